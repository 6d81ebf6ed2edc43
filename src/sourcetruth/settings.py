"""A book folder's settings file (``policy.toml``): the policy, the adapters and the transports.

The file is TOML. Every key is checked: a key the library does not know is an
error that names it, so a typo never silently means "the default". Secrets
never go in the file: a transport option ending in ``_env`` names the
environment variable that holds the value (``password_env =
"SMTP_PASSWORD"``), read only when the transport is built; giving both
``password`` and ``password_env`` is an error. A schedule is an RFC 5545
recurrence rule that must happen at least once (``INTERVAL=0`` never moves
on, so it is refused).

.. code-block:: toml

    timezone = "Europe/London"   # an IANA name: for schedules, and times given without an offset
    region = "GB"                # a phone region code: for numbers written without +country
    precedence = ["mis", "import"]  # sources of this file, each once; address-book only last

    [guard]                      # the mass-departure guard (rule 6)
    max_count = 500
    max_fraction = 0.2
    min_count = 5
    enabled = true               # false: no sync is ever held

    [sources.mis]
    kind = "mis"
    schedule = "FREQ=DAILY;BYHOUR=2;BYMINUTE=0"
    adapter = "oneroster"        # what `sourcetruth sync mis PATH` reads with
    options = { org = "org-1" }  # the adapter's own options

    [sources.import]
    kind = "import"
    covers = ["given_name", "family_name", "phones", "emails"]
    adapter = "csv"
    mapping = "mapping.toml"     # the CSV column mapping, relative to this file

    [transports.email]
    adapter = "smtp"
    host = "smtp.example.org"
    sender = "office@school.example.org"
    username = "office"
    password_env = "SMTP_PASSWORD"
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from attrs import field, frozen
from dateutil.rrule import rrulestr

from sourcetruth.exceptions import SourceDataError, SourceTruthError
from sourcetruth.model import ADDRESS_BOOK, FIELDS, Channel, SourceKind
from sourcetruth.policy import DepartureGuard, Policy, Schedule, Source

__all__ = ["STARTER", "Settings", "SourceSettings", "TransportSettings", "parse_settings"]

#: The settings ``sourcetruth init`` writes when it is given none: one MIS that
#: syncs nightly, and CSV imports.
STARTER: Final = """\
# The book's policy: which sources exist, what each covers, when each syncs,
# and how messages leave. See docs/cli.md for every key.
timezone = "Europe/London"
region = "GB"
precedence = ["mis", "import"]

[guard]
max_count = 500
max_fraction = 0.2
min_count = 5

[sources.mis]
kind = "mis"
# What a OneRoster export carries; a field the MIS covers, its value wins.
covers = ["given_name", "family_name", "role", "phones", "emails", "relationships", "year_group"]
schedule = "FREQ=DAILY;BYHOUR=2;BYMINUTE=0"
adapter = "oneroster"

[sources.import]
kind = "import"
covers = ["given_name", "family_name", "phones", "emails"]
adapter = "csv"
# mapping = "mapping.toml"

# Without a [transports.*] table, messages go to the folder's outbox.
"""

_TOP: Final = frozenset({"timezone", "region", "precedence", "guard", "sources", "transports"})
_SOURCE: Final = frozenset({"kind", "covers", "schedule", "adapter", "options", "mapping"})
_GUARD: Final = frozenset({"max_count", "max_fraction", "min_count", "enabled"})


@frozen
class SourceSettings:
    """How the command-line program reads one source: its adapter and options."""

    name: str
    adapter: str | None = None
    options: Mapping[str, Any] = field(factory=dict)
    mapping: Path | None = None


@frozen
class TransportSettings:
    """One channel's transport: the adapter's name and its options.

    ``options`` may hold ``NAME_env`` keys; :meth:`resolved` swaps each for
    ``NAME``, read from *environ*.
    """

    channel: Channel
    adapter: str
    options: Mapping[str, Any] = field(factory=dict)

    def resolved(self, environ: Mapping[str, str], *, file: str) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for key, value in self.options.items():
            if key.endswith("_env"):
                if not isinstance(value, str) or value not in environ:
                    where = f"transports.{self.channel.value}.{key}"
                    # The variable's name is not a secret; its value would be.
                    msg = f"the environment variable {value} that {where} names is not set"
                    raise SourceDataError(msg, file=file, field=where)
                options[key.removesuffix("_env")] = environ[value]
            else:
                options[key] = value
        return options


@frozen
class Settings:
    """A parsed settings file."""

    policy: Policy
    timezone: ZoneInfo
    sources: Mapping[str, SourceSettings]
    transports: Mapping[Channel, TransportSettings]


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, message: str) -> SourceDataError:
        return SourceDataError(message, file=self.file, field=where)

    def table(self, value: object, where: str, allowed: frozenset[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                known = ", ".join(sorted(allowed))
                raise self.fail(
                    f"{where}.{unknown[0]}" if where else unknown[0],
                    f"unknown key; the keys here are {known}",
                )
        return value

    def text(self, value: object, where: str) -> str:
        if value is None:
            raise self.fail(where, "is required")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "must be a non-empty string")
        return value

    def texts(self, value: object, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, "must be a list of strings")
        return tuple(value)


def _zone(reader: _Reader, name: object, where: str) -> ZoneInfo:
    text = reader.text(name, where)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a folder of the zone database ("Europe"), or a name too long for a file.
        raise reader.fail(where, "is not an IANA timezone name (like Europe/London)") from None


def _region(reader: _Reader, value: object, where: str) -> str:
    text = reader.text(value, where)
    if text not in phonenumbers.SUPPORTED_REGIONS:
        # Any other value would leave every number written without +country unnormalised.
        msg = "is not a region code for phone numbers (two capital letters, like GB)"
        raise reader.fail(where, msg)
    return text


_INTERVAL: Final = re.compile(r"INTERVAL=([^;\s]*)")


def _schedule(reader: _Reader, value: object, where: str, zone: str) -> Schedule:
    rule = reader.text(value, where)
    try:
        parsed = rrulestr(rule, dtstart=datetime(2000, 1, 1), ignoretz=True)
        # INTERVAL=0 repeats one instant for ever: a search for the next sync would never end.
        stuck = any(int(n) < 1 for n in _INTERVAL.findall(rule.upper()))
        # dateutil builds some impossible rules (BYMONTHDAY=32) and only finds out when asked.
        first = [] if stuck else list(itertools.islice(parsed, 1))
    except (ValueError, TypeError, OverflowError):
        stuck, first = True, []
    if stuck:
        raise reader.fail(where, "is not an RFC 5545 recurrence rule")
    if not first:
        raise reader.fail(where, "never happens: the recurrence rule has no occurrence")
    return Schedule(rule, zone)


def _count(reader: _Reader, value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise reader.fail(where, "must be a whole number, zero or more")
    return value


def _guard(reader: _Reader, raw: object) -> DepartureGuard:
    table = reader.table(raw, "guard", _GUARD)
    values: dict[str, Any] = {}
    for key in ("max_count", "min_count"):
        if key in table:
            values[key] = _count(reader, table[key], f"guard.{key}")
    if "max_fraction" in table:
        value = table["max_fraction"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or math.isnan(value)
            or not 0 <= value <= 1
        ):
            raise reader.fail("guard.max_fraction", "must be a number from 0 to 1")
        values["max_fraction"] = value
    if "enabled" in table:
        if not isinstance(table["enabled"], bool):
            raise reader.fail("guard.enabled", "must be true or false")
        values["enabled"] = table["enabled"]
    return DepartureGuard(**values)


def _precedence(reader: _Reader, raw: object, names: list[str]) -> tuple[str, ...]:
    precedence = reader.texts(raw, "precedence")
    known = ", ".join([*names, ADDRESS_BOOK])
    for index, name in enumerate(precedence, start=1):
        if name not in names and name != ADDRESS_BOOK:
            msg = f"entry {index} names no source of this file; the sources are {known}"
            raise reader.fail("precedence", msg)
        if precedence.index(name) != index - 1:
            raise reader.fail("precedence", f"entry {index} names a source a second time")
    if ADDRESS_BOOK in precedence[:-1]:
        msg = f"{ADDRESS_BOOK} can only come last: local values only fill what no feed covers"
        raise reader.fail("precedence", msg)
    return precedence


def _transport(reader: _Reader, name: str, raw: object) -> TransportSettings:
    where = f"transports.{name}"
    try:
        channel = Channel(name)
    except ValueError:
        channels = ", ".join(c.value for c in Channel)
        raise reader.fail(where, f"is not a channel; channels are {channels}") from None
    options = dict(reader.table(raw, where, None))
    adapter = reader.text(options.pop("adapter", None), f"{where}.adapter")
    for key, value in options.items():
        if not key.endswith("_env"):
            continue
        reader.text(value, f"{where}.{key}")  # the name of an environment variable
        plain = key.removesuffix("_env")
        if plain in options:
            msg = f"{plain} and {key} both give {plain}: keep one (the secret in the environment)"
            raise reader.fail(f"{where}.{key}", msg)
    return TransportSettings(channel, adapter, options)


def _source(
    reader: _Reader, name: str, raw: object, zone: str, base: Path
) -> tuple[Source, SourceSettings]:
    where = f"sources.{name}"
    if name == ADDRESS_BOOK:
        raise reader.fail(where, "the address book is always there; do not list it")
    table = reader.table(raw, where, _SOURCE)
    kind_name = reader.text(table.get("kind"), f"{where}.kind")
    try:
        kind = SourceKind(kind_name)
    except ValueError:
        kinds = ", ".join(k.value for k in SourceKind if k is not SourceKind.ADDRESS_BOOK)
        raise reader.fail(f"{where}.kind", f"must be one of {kinds}") from None
    if kind is SourceKind.ADDRESS_BOOK:
        raise reader.fail(f"{where}.kind", "the address book is always there; do not list it")
    covers = frozenset(FIELDS)
    if "covers" in table:
        covers = frozenset(reader.texts(table["covers"], f"{where}.covers"))
        unknown = sorted(covers - set(FIELDS))
        if unknown:
            fields = ", ".join(FIELDS)
            raise reader.fail(f"{where}.covers", f"names an unknown field; fields are {fields}")
    schedule = None
    if "schedule" in table:
        schedule = _schedule(reader, table["schedule"], f"{where}.schedule", zone)
    options = reader.table(table.get("options", {}), f"{where}.options", None)
    mapping = None
    if "mapping" in table:
        mapping = base / reader.text(table["mapping"], f"{where}.mapping")
    adapter = reader.text(table["adapter"], f"{where}.adapter") if "adapter" in table else None
    return Source(name, kind, covers, schedule), SourceSettings(name, adapter, options, mapping)


def parse_settings(text: str, *, file: str = "policy.toml", base: Path | None = None) -> Settings:
    """Read a settings file's *text*; errors name *file* and the key at fault.

    *base* is the folder that relative paths in the file start from.
    """
    reader = _Reader(file)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(error, file) from None
    table = reader.table(raw, "", _TOP)
    zone_name = table.get("timezone", "Europe/London")
    zone = _zone(reader, zone_name, "timezone")
    region = _region(reader, table.get("region", "GB"), "region")
    sources_raw = reader.table(table.get("sources", {}), "sources", None)
    if not sources_raw:
        raise reader.fail("sources", "name at least one source, like [sources.mis]")
    sources: list[Source] = []
    readers: dict[str, SourceSettings] = {}
    for name, raw_source in sources_raw.items():
        try:
            source, how = _source(reader, name, raw_source, zone.key, base or Path("."))
        except SourceDataError:
            raise
        except SourceTruthError as error:  # the policy's own checks, like a bad name
            raise reader.fail(f"sources.{name}", str(error)) from None
        sources.append(source)
        readers[name] = how
    guard = _guard(reader, table.get("guard", {}))
    precedence = _precedence(reader, table.get("precedence", []), [s.name for s in sources])
    try:
        policy = Policy(
            sources=tuple(sources), precedence=precedence, guard=guard, default_region=region
        )
    except SourceTruthError as error:  # checked above; kept for the policy's own new rules
        raise reader.fail("precedence", str(error)) from None
    transports: dict[Channel, TransportSettings] = {}
    transports_raw = reader.table(table.get("transports", {}), "transports", None)
    for name, raw_transport in transports_raw.items():
        transport = _transport(reader, name, raw_transport)
        transports[transport.channel] = transport
    return Settings(policy, zone, readers, transports)


_TOML_POSITION: Final = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")
#: tomllib's messages that quote a character of the file; the rest quote keys or nothing.
_TOML_QUOTING: Final = ("Found invalid character", "Illegal character")


def _syntax_error(error: tomllib.TOMLDecodeError, file: str) -> SourceDataError:
    """A TOML syntax error, with tomllib's line and column, and no text of the file."""
    reason = str(error)
    where = ""
    line: int | None = None
    found = _TOML_POSITION.search(reason)
    if found is not None:
        reason = reason[: found.start()]
        if found.group(1) is not None:
            line = int(found.group(1))
            where = f" at column {found.group(2)}"
        else:
            where = " at the end of the file"
    for quoting in _TOML_QUOTING:
        if reason.startswith(quoting):
            reason = quoting
    return SourceDataError(f"not valid TOML: {reason}{where}", file=file, line=line)
