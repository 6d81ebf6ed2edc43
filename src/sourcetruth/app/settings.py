"""A book folder's settings file (``policy.toml``): the policy, the adapters and the transports.

The file is TOML. Every key is checked: a key the library does not know is an
error that names it, so a typo never silently means "the default". Secrets
never go in the file: a transport option ending in ``_env`` names the
environment variable that holds the value (``password_env =
"SMTP_PASSWORD"``), read only when the transport is built; giving both
``password`` and ``password_env`` is an error. A schedule is an RFC 5545
recurrence rule that must happen at least once (``INTERVAL=0`` never moves
on, so it is refused) and never end: a nightly sync does not stop, so
``COUNT`` and ``UNTIL`` are refused too. A transport option that holds a
password or token in the file itself is accepted, with a warning in the log
(naming the key, never the value), and listed in
:attr:`Settings.plaintext_secrets`.

:func:`check_adapters` checks what only the installed adapters can tell: that
every adapter named exists and takes every option given. A book folder runs
it whenever it reads the file. :func:`read_mapping` reads a CSV mapping file,
and names the file and the key of any mistake in it.

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
    covers = ["given_name", "family_name", "role", "phones", "emails", "relationships",
              "year_group"]      # what a OneRoster export carries
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

import inspect
import itertools
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from attrs import field, frozen
from dateutil.rrule import rrulestr

from sourcetruth.adapters._structure import hint
from sourcetruth.exceptions import SourceDataError, SourceTruthError
from sourcetruth.model import ADDRESS_BOOK, FIELDS, Channel, SourceKind
from sourcetruth.policy import DepartureGuard, Policy, Schedule, Source

if TYPE_CHECKING:
    from sourcetruth.adapters.sources.tabular import CsvMapping

__all__ = [
    "STARTER",
    "Settings",
    "SourceSettings",
    "TransportSettings",
    "check_adapters",
    "parse_settings",
    "read_mapping",
]

_log = logging.getLogger(__name__)

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
    """A parsed settings file.

    ``plaintext_secrets`` names (by key path, like ``transports.sms.token``)
    each transport option that holds a password or token in the file itself
    rather than naming an environment variable with ``NAME_env``.
    """

    policy: Policy
    timezone: ZoneInfo
    sources: Mapping[str, SourceSettings]
    transports: Mapping[Channel, TransportSettings]
    plaintext_secrets: tuple[str, ...] = ()


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
#: The parts of a rule that make it end; a source's syncs go on for as long as it is used.
_ENDING: Final = re.compile(r"(?:^|[;:\s])(COUNT|UNTIL)\s*=", re.IGNORECASE)


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
    ending = _ENDING.search(rule)
    if ending is not None:
        part = ending.group(1).upper()
        msg = (
            f"must not end: a source's syncs go on for as long as it is used, so the rule "
            f"cannot hold {part} (leave {part} out)"
        )
        raise reader.fail(where, msg)
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
            msg = "guard.max_fraction"
            raise reader.fail(msg, "must be a number from 0 to 1")
        values["max_fraction"] = value
    if "enabled" in table:
        if not isinstance(table["enabled"], bool):
            msg = "guard.enabled"
            raise reader.fail(msg, "must be true or false")
        values["enabled"] = table["enabled"]
    return DepartureGuard(**values)


def _precedence(reader: _Reader, raw: object, names: list[str]) -> tuple[str, ...]:
    precedence = reader.texts(raw, "precedence")
    known = ", ".join([*names, ADDRESS_BOOK])
    for index, name in enumerate(precedence, start=1):
        if name not in names and name != ADDRESS_BOOK:
            msg = f"entry {index} names no source of this file; the sources are {known}"
            msg_0 = "precedence"
            raise reader.fail(msg_0, msg)
        if precedence.index(name) != index - 1:
            msg_0 = "precedence"
            raise reader.fail(msg_0, f"entry {index} names a source a second time")
    if ADDRESS_BOOK in precedence[:-1]:
        msg = f"{ADDRESS_BOOK} can only come last: local values only fill what no feed covers"
        msg_0 = "precedence"
        raise reader.fail(msg_0, msg)
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
            msg_0 = f"{where}.{key}"
            raise reader.fail(msg_0, msg)
    return TransportSettings(channel, adapter, options)


#: Option names that hold a secret: a password or token belongs in the environment.
_SECRET: Final = re.compile(r"(?:^|_)(?:password|passwd|token|secret|api_key|apikey)$")


def _plaintext_secrets(transport: TransportSettings) -> list[str]:
    found = []
    for key in transport.options:
        if _SECRET.search(key.lower()):
            where = f"transports.{transport.channel.value}.{key}"
            # The key names the secret; its value is never logged.
            _log.warning(
                "%s holds a secret in the settings file itself: name an environment "
                "variable with %s_env instead",
                where,
                key,
            )
            found.append(where)
    return found


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
        msg = f"{where}.kind"
        raise reader.fail(msg, f"must be one of {kinds}") from None
    if kind is SourceKind.ADDRESS_BOOK:
        msg = f"{where}.kind"
        raise reader.fail(msg, "the address book is always there; do not list it")
    covers = frozenset(FIELDS)
    if "covers" in table:
        covers = frozenset(reader.texts(table["covers"], f"{where}.covers"))
        unknown = sorted(covers - set(FIELDS))
        if unknown:
            fields = ", ".join(FIELDS)
            msg = f"{where}.covers"
            raise reader.fail(msg, f"names an unknown field; fields are {fields}")
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
        msg = "sources"
        raise reader.fail(msg, "name at least one source, like [sources.mis]")
    sources: list[Source] = []
    readers: dict[str, SourceSettings] = {}
    for name, raw_source in sources_raw.items():
        try:
            source, how = _source(reader, name, raw_source, zone.key, base or Path("."))
        except SourceDataError:
            raise
        except SourceTruthError as error:  # the policy's own checks, like a bad name
            msg = f"sources.{name}"
            raise reader.fail(msg, str(error)) from None
        sources.append(source)
        readers[name] = how
    guard = _guard(reader, table.get("guard", {}))
    precedence = _precedence(reader, table.get("precedence", []), [s.name for s in sources])
    try:
        policy = Policy(
            sources=tuple(sources), precedence=precedence, guard=guard, default_region=region
        )
    except SourceTruthError as error:  # checked above; kept for the policy's own new rules
        msg = "precedence"
        raise reader.fail(msg, str(error)) from None
    transports: dict[Channel, TransportSettings] = {}
    secrets: list[str] = []
    transports_raw = reader.table(table.get("transports", {}), "transports", None)
    for name, raw_transport in transports_raw.items():
        transport = _transport(reader, name, raw_transport)
        transports[transport.channel] = transport
        secrets.extend(_plaintext_secrets(transport))
    return Settings(policy, zone, readers, transports, tuple(secrets))


# --------------------------------------------------------------------------
# What only the installed adapters can tell


def _factory(kind: str, name: str, where: str, file: str) -> Callable[..., Any]:
    from sourcetruth.adapters import registry

    assert kind in ("source", "transport")
    try:
        return registry.get(kind, name)  # type: ignore[arg-type]
    except LookupError:
        known = registry.available(kind)  # type: ignore[arg-type]
        msg = (
            f"no {kind} adapter is called {name!r}{hint(name, known)}; "
            f"the {kind} adapters are {', '.join(known)}"
        )
        raise SourceDataError(msg, file=file, field=where) from None


_BY_POSITION: Final = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_NAME: Final = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _check_options(
    factory: Callable[..., Any],
    options: Mapping[str, Any],
    *,
    adapter: str,
    where: str,
    file: str,
    positional: int,
    supplied: frozenset[str],
    env: bool,
) -> None:
    """Check *options* against the parameters of *factory*.

    The first *positional* parameters are given by position (a source's path,
    an outbox's channel); *supplied* are given by the book folder. With *env*,
    ``NAME_env`` gives ``NAME``.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a factory that cannot say what it takes: it will say so when called
    parameters = list(signature.parameters.values())
    skipped = 0
    named: dict[str, inspect.Parameter] = {}
    any_name = False
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            any_name = True
        elif parameter.kind in _BY_POSITION and skipped < positional:
            skipped += 1
        elif parameter.kind in _BY_NAME:
            named[parameter.name] = parameter
    known = sorted(n for n in named if n not in supplied)
    given: set[str] = set()
    for key in options:
        plain = key.removesuffix("_env") if env else key
        given.add(plain)
        if plain in supplied:
            msg = f"is given by the book folder, not by an option of the {adapter!r} adapter"
            raise SourceDataError(msg, file=file, field=f"{where}.{key}")
        if plain not in named and not any_name:
            listed = ", ".join(known) if known else "none"
            msg = (
                f"is not an option of the {adapter!r} adapter{hint(plain, known)}; "
                f"its options are {listed}"
            )
            raise SourceDataError(msg, file=file, field=f"{where}.{key}")
    for name, parameter in named.items():
        if parameter.default is inspect.Parameter.empty and name not in supplied | given:
            how = f" (or {name}_env, naming an environment variable)" if env else ""
            msg = f"is required by the {adapter!r} adapter: give {name}{how}"
            raise SourceDataError(msg, file=file, field=f"{where}.{name}")


def check_adapters(settings: Settings, *, file: str = "policy.toml") -> None:
    """Check that every adapter *settings* names is installed and takes the options given.

    A source's options are keyword arguments of its adapter (its path and
    ``source`` come from the book folder, and so do ``mapping`` and ``kind``
    when the source has a mapping or is read as CSV); a transport's are
    keyword arguments of its transport, ``NAME_env`` standing for ``NAME``.
    A mistake is a :class:`~sourcetruth.SourceDataError` naming *file* and the
    key path, like ``sources.mis.options.orgg``.
    """
    for name, how in settings.sources.items():
        if how.adapter is None:
            continue
        where = f"sources.{name}"
        factory = _factory("source", how.adapter, f"{where}.adapter", file)
        supplied = {"source"}
        if how.mapping is not None or how.adapter == "csv":
            supplied |= {"mapping", "kind"}
        _check_options(
            factory,
            how.options,
            adapter=how.adapter,
            where=f"{where}.options",
            file=file,
            positional=1,
            supplied=frozenset(supplied),
            env=False,
        )
    for channel, transport in settings.transports.items():
        where = f"transports.{channel.value}"
        factory = _factory("transport", transport.adapter, f"{where}.adapter", file)
        _check_options(
            factory,
            transport.options,
            adapter=transport.adapter,
            where=where,
            file=file,
            # The book folder gives an outbox its channel (see BookFolder.transports).
            positional=1 if transport.adapter == "outbox" else 0,
            supplied=frozenset(),
            env=True,
        )


# --------------------------------------------------------------------------
# CSV mapping files


def read_mapping(path: str | os.PathLike[str], *, named_by: str | None = None) -> CsvMapping:
    """Read the CSV mapping file at *path* (see :mod:`sourcetruth.adapters.sources.tabular`).

    Every mistake, a file that cannot be read included, is a
    :class:`~sourcetruth.SourceDataError` naming the file and, where there is
    one, the key at fault. *named_by* is the settings key that names the file
    (``sources.import.mapping``), for the message when it cannot be read.
    """
    from sourcetruth.adapters.sources.tabular import CsvMapping, CsvMappingError

    file = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        if isinstance(error, UnicodeDecodeError):
            reason = "it is not UTF-8 text"
        elif isinstance(error, FileNotFoundError):
            reason = "there is no such file"
        else:
            reason = error.strerror or error.__class__.__name__
        by = f" that {named_by} names" if named_by else ""
        msg = f"cannot read the CSV mapping{by}: {reason}"
        raise SourceDataError(msg, file=file) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(error, file) from None
    try:
        return CsvMapping.from_dict(data, file=file)
    except CsvMappingError as error:  # the mapping's own checks, by key path
        first = error.problems[0]
        raise SourceDataError(first.message, file=file, field=first.path or None) from None


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
