"""A book folder's settings file (``policy.toml``): the policy, the adapters and the transports.

The file is TOML. Every key is checked: a key the library does not know is an
error that names it, so a typo never silently means "the default". The file
is read by the package's one converter, strictly (``"5"`` is not a number,
``0`` is not ``false``), and its values are checked by the checks the Python
API makes: the ``[guard]`` table is read as a
:class:`~sourcetruth.policy.DepartureGuard`, so a mistake there says what
``DepartureGuard`` says, at its key (``guard.max_count``). Secrets
never go in the file: a transport option (or a source's option) ending in
``_env`` names the environment variable that holds the value
(``password_env = "SMTP_PASSWORD"``, a OneRoster service's
``client_secret_env``), read only when the transport or adapter is built;
giving both ``password`` and ``password_env`` is an error. A schedule is an RFC 5545
recurrence rule that must happen at least once (``INTERVAL=0`` never moves
on, so it is refused) and never end: a nightly sync does not stop, so
``COUNT`` and ``UNTIL`` are refused too. A transport or source option that
holds a password, token or secret in the file itself is accepted, with a
warning in the log (naming the key, never the value), and listed in
:attr:`Settings.plaintext_secrets`. ``allow_insecure = true`` in a
transport's table accepts credentials in clear to another machine (see the
transports); it, and SMTP's older ``allow_plain_auth``, must be written in
the file as ``true`` or ``false``: text, a number or a ``_env`` variable is
refused.

:func:`check_adapters` checks what only the installed adapters can tell: that
every adapter named exists and takes every option given. A book folder runs
it whenever it reads the file. :func:`read_mapping` reads a CSV mapping file,
and names the file and the key of any mistake in it. A source's ``mapping``
is a path relative to the book folder that stays inside it: an absolute path,
or one that leads out of the folder (by ``..`` or through a link), is refused
at its key.

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
    mapping = "mapping.toml"     # the CSV column mapping: in the book folder, relative to it
    region = "IE"                # optional: this source's numbers without +country are Irish

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
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from zoneinfo import ZoneInfo

import phonenumbers
from attrs import field, frozen
from attrs.validators import optional
from dateutil.rrule import rrulestr

from sourcetruth.adapters._structure import Problem, StructureError, hint, structure
from sourcetruth.exceptions import (
    SourceDataError,
    SourceTruthError,
    UnknownAdapterError,
    UsageError,
)
from sourcetruth.model import ADDRESS_BOOK, FIELDS, Channel, SourceKind, unknown_fields
from sourcetruth.policy import DEFAULT_GUARD, DepartureGuard, Policy, Schedule, Source

if TYPE_CHECKING:
    from sourcetruth.adapters.sources.tabular import CsvMapping

__all__ = [
    "STARTER",
    "Settings",
    "SourceSettings",
    "TransportSettings",
    "check_adapters",
    "inside",
    "is_live",
    "parse_settings",
    "read_mapping",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

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


@frozen
class SourceSettings:
    """How the command-line program reads one source: its adapter and options.

    ``options`` may hold ``NAME_env`` keys (a live source's
    ``client_secret_env``); :meth:`resolved` swaps each for ``NAME``, read
    from *environ*.
    """

    name: str
    adapter: str | None = None
    options: Mapping[str, Any] = field(factory=dict)
    mapping: Path | None = None

    def resolved(self, environ: Mapping[str, str], *, file: str) -> dict[str, Any]:
        return _resolved(self.options, environ, where=f"sources.{self.name}.options", file=file)


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
        return _resolved(self.options, environ, where=f"transports.{self.channel.value}", file=file)


def _resolved(
    options: Mapping[str, Any], environ: Mapping[str, str], *, where: str, file: str
) -> dict[str, Any]:
    """*options* with each ``NAME_env`` swapped for ``NAME``, read from *environ*."""
    found: dict[str, Any] = {}
    for key, value in options.items():
        if key.endswith("_env"):
            if not isinstance(value, str) or value not in environ:
                # The variable's name is not a secret; its value would be.
                msg = f"the environment variable {value} that {where}.{key} names is not set"
                raise SourceDataError(msg, file=file, field=f"{where}.{key}")
            found[key.removesuffix("_env")] = environ[value]
        else:
            found[key] = value
    return found


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


# --------------------------------------------------------------------------
# The file as written: read by the package's converter (adapters._structure),
# whose classes check their own values: the guard is a DepartureGuard.


def _known_fields(_inst: object, _attr: object, value: frozenset[str]) -> None:
    # Source checks this too, but its message names the fields it does not know:
    # a file's message must not repeat what was typed.
    if unknown_fields(value):
        msg = f"names an unknown field; fields are {', '.join(FIELDS)}"
        raise UsageError(msg)


_INTERVAL: Final = re.compile(r"INTERVAL=([^;\s]*)")
#: The parts of a rule that make it end; a source's syncs go on for as long as it is used.
_ENDING: Final = re.compile(r"(?:^|[;:\s])(COUNT|UNTIL)\s*=", re.IGNORECASE)


def _recurring(_inst: object, _attr: object, rule: str) -> None:
    """An RFC 5545 rule that happens, and goes on happening."""
    try:
        parsed = rrulestr(rule, dtstart=datetime(2000, 1, 1), ignoretz=True)
        # INTERVAL=0 repeats one instant for ever: a search for the next sync would never end.
        stuck = any(int(n) < 1 for n in _INTERVAL.findall(rule.upper()))
        # dateutil builds some impossible rules (BYMONTHDAY=32) and only finds out when asked.
        first = [] if stuck else list(itertools.islice(parsed, 1))
    except (ValueError, TypeError, OverflowError):
        stuck, first = True, []
    if stuck:
        msg = "is not an RFC 5545 recurrence rule"
        raise UsageError(msg)
    if not first:
        msg = "never happens: the recurrence rule has no occurrence"
        raise UsageError(msg)
    ending = _ENDING.search(rule)
    if ending is not None:
        part = ending.group(1).upper()
        msg = (
            f"must not end: a source's syncs go on for as long as it is used, so the rule "
            f"cannot hold {part} (leave {part} out)"
        )
        raise UsageError(msg)


def _phone_region(_inst: object, _attr: object, value: str) -> None:
    if value not in phonenumbers.SUPPORTED_REGIONS:
        # Any other value would leave every number written without +country unnormalised.
        msg = "is not a region code for phone numbers (two capital letters, like GB)"
        raise UsageError(msg)


@frozen
class _SourceTable:
    """A ``[sources.NAME]`` table as written."""

    kind: str
    covers: frozenset[str] = field(default=frozenset(FIELDS), validator=_known_fields)
    schedule: str | None = field(default=None, validator=optional(_recurring))
    adapter: str | None = None
    options: dict[str, Any] = field(factory=dict)
    mapping: str | None = None
    region: str | None = field(default=None, validator=optional(_phone_region))


_LONDON: Final = ZoneInfo("Europe/London")


@frozen
class _File:
    """A settings file as written, before its sources make a policy."""

    timezone: ZoneInfo = _LONDON
    region: str = field(default="GB", validator=_phone_region)
    sources: dict[str, _SourceTable] = field(factory=dict)
    guard: DepartureGuard = DEFAULT_GUARD
    precedence: tuple[str, ...] = ()
    transports: dict[Channel, dict[str, Any]] = field(factory=dict)


def _read(data: object, cls: type[T], *, file: str, path: str = "") -> T:
    """*data* as a *cls*; its first problem as a :class:`SourceDataError` naming the key."""
    try:
        return structure(data, cls, path=path)
    except StructureError as error:
        raise _first(error.problems, file) from None


def _first(problems: Sequence[Problem], file: str) -> SourceDataError:
    """The first of *problems*, the one a person fixes first, naming *file* and its key."""
    return SourceDataError(problems[0].message, file=file, field=problems[0].path or None)


def parse_settings(text: str, *, file: str = "policy.toml", base: Path | None = None) -> Settings:
    """Read a settings file's *text*; errors name *file* and the key at fault.

    *base* is the folder that relative paths in the file start from.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(error, file) from None
    written = _read(raw, _File, file=file)
    if not written.sources:
        msg = "name at least one source, like [sources.mis]"
        raise SourceDataError(msg, file=file, field="sources")
    sources = [
        _source(name, table, written.timezone.key, file) for name, table in written.sources.items()
    ]
    readers = {
        name: SourceSettings(
            name,
            table.adapter,
            table.options,
            None
            if table.mapping is None
            else inside(table.mapping, base, where=f"sources.{name}.mapping", file=file),
        )
        for name, table in written.sources.items()
    }
    policy = _policy(written, sources, file)
    transports = {
        channel: _transport(channel, options, file, base)
        for channel, options in written.transports.items()
    }
    for name, table in written.sources.items():
        _env_options(table.options, where=f"sources.{name}.options", file=file)
    secrets = [
        *(
            where
            for name, table in written.sources.items()
            for where in _plaintext(table.options, f"sources.{name}.options")
        ),
        *(
            where
            for transport in transports.values()
            for where in _plaintext(transport.options, f"transports.{transport.channel.value}")
        ),
    ]
    return Settings(policy, written.timezone, readers, transports, tuple(secrets))


def inside(written: str, base: Path | None, *, where: str, file: str) -> Path:
    """The path *written* at the key *where*: relative to the book folder *base*, inside it.

    An absolute path, one whose ``..`` climbs out, or (given *base*) one
    that a link leads out of the folder, is a :class:`SourceDataError`
    naming *file* and the key, never the path (it may be anything: a file of
    another school, ``/etc/passwd``). Without *base*, the path as written.
    """
    relative = Path(written)
    climbs = os.path.normpath(written).split(os.sep)[0] == os.pardir
    if "\x00" in written or relative.is_absolute() or relative.drive or climbs:
        msg = "must be a path relative to the book folder, and stay inside it"
        raise SourceDataError(msg, file=file, field=where)
    if base is None:
        return relative
    try:
        inside = (base / relative).resolve().is_relative_to(base.resolve())
    except (OSError, RuntimeError):  # a loop of links
        inside = False
    if not inside:
        msg = "leads out of the book folder through a link: keep it inside the folder"
        raise SourceDataError(msg, file=file, field=where)
    return base / relative


def _source(name: str, table: _SourceTable, zone: str, file: str) -> Source:
    where = f"sources.{name}"
    listed = "the address book is always there; do not list it"
    if name == ADDRESS_BOOK:
        raise SourceDataError(listed, file=file, field=where)
    kinds = [k.value for k in SourceKind if k is not SourceKind.ADDRESS_BOOK]
    if table.kind not in kinds:
        msg = listed if table.kind == ADDRESS_BOOK else f"must be one of {', '.join(kinds)}"
        raise SourceDataError(msg, file=file, field=f"{where}.kind")
    schedule = None if table.schedule is None else Schedule(table.schedule, zone)
    try:
        return Source(name, SourceKind(table.kind), table.covers, schedule, region=table.region)
    except SourceTruthError as error:  # the source's own checks, like a bad name
        raise SourceDataError(str(error), file=file, field=where) from None


def _policy(written: _File, sources: list[Source], file: str) -> Policy:
    names = [s.name for s in sources]
    known = ", ".join([*names, ADDRESS_BOOK])
    # The policy checks these too, but names what it does not know: a file's
    # message says which entry instead, never what was typed.
    for index, name in enumerate(written.precedence, start=1):
        if name not in names and name != ADDRESS_BOOK:
            msg = f"entry {index} names no source of this file; the sources are {known}"
            raise SourceDataError(msg, file=file, field="precedence")
        if written.precedence.index(name) != index - 1:
            msg = f"entry {index} names a source a second time"
            raise SourceDataError(msg, file=file, field="precedence")
    try:
        return Policy(
            sources=tuple(sources),
            precedence=written.precedence,
            guard=written.guard,
            default_region=written.region,
        )
    except SourceTruthError as error:  # the policy's own rules: the address book comes last
        raise SourceDataError(str(error), file=file, field="precedence") from None


def _transport(
    channel: Channel, table: Mapping[str, Any], file: str, base: Path | None
) -> TransportSettings:
    where = f"transports.{channel.value}"
    options = dict(table)
    if "adapter" not in options:
        msg = "is required"
        raise SourceDataError(msg, file=file, field=f"{where}.adapter")
    adapter = _read(options.pop("adapter"), str, file=file, path=f"{where}.adapter")
    if adapter == "outbox" and "folder" in options:
        # Like a mapping, an outbox's folder is in the book folder: it holds personal data.
        folder = _read(options["folder"], str, file=file, path=f"{where}.folder")
        inside(folder, base, where=f"{where}.folder", file=file)
    for key, value in options.items():
        if key.removesuffix("_env") in _FLAGS:
            _flag(key, value, where=where, file=file)
    _env_options(options, where=where, file=file)
    return TransportSettings(channel, adapter, options)


def _env_options(options: Mapping[str, Any], *, where: str, file: str) -> None:
    """Each ``NAME_env`` option names a variable (text), and ``NAME`` is not given as well."""
    for key, value in options.items():
        if not key.endswith("_env"):
            continue
        _read(value, str, file=file, path=f"{where}.{key}")  # the name of an environment variable
        plain = key.removesuffix("_env")
        if plain in options:
            msg = f"{plain} and {key} both give {plain}: keep one (the secret in the environment)"
            raise SourceDataError(msg, file=file, field=f"{where}.{key}")


#: Transport options that accept a risk (credentials in clear to another machine): written
#: in the file as true or false, never read from the environment (any text there is true).
_FLAGS: Final = frozenset({"allow_insecure", "allow_plain_auth"})


def _flag(key: str, value: object, *, where: str, file: str) -> None:
    """Check the transport option *key*, one of :data:`_FLAGS`: a boolean in the file itself."""
    if key.endswith("_env"):
        plain = key.removesuffix("_env")
        msg = f"{plain} is written in the file itself, as true or false, not read from a variable"
        raise SourceDataError(msg, file=file, field=f"{where}.{key}")
    _read(value, bool, file=file, path=f"{where}.{key}")


#: Option names that hold a secret: a password or token belongs in the environment.
_SECRET: Final = re.compile(r"(?:^|_)(?:password|passwd|token|secret|api_key|apikey)$")


def _plaintext(options: Mapping[str, Any], at: str) -> list[str]:
    """The key paths of the *options* at *at* that hold a secret in the file itself."""
    found = []
    for key in options:
        if _SECRET.search(key.lower()):
            where = f"{at}.{key}"
            # The key names the secret; its value is never logged.
            _log.warning(
                "%s holds a secret in the settings file itself: name an environment "
                "variable with %s_env instead",
                where,
                key,
            )
            found.append(where)
    return found


# --------------------------------------------------------------------------
# What only the installed adapters can tell


def is_live(factory: Callable[..., Any]) -> bool:
    """Whether a source adapter's *factory* reads a service (its ``live`` is True), not a path."""
    return getattr(factory, "live", False) is True


def _factory(kind: str, name: str, where: str, file: str) -> Callable[..., Any]:
    from sourcetruth.adapters import registry

    assert kind in ("source", "transport")
    try:
        return registry.get(kind, name)  # type: ignore[arg-type]
    except UnknownAdapterError:
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
            # A live source (a REST service) reads from its options' URL, not a path.
            positional=0 if is_live(factory) else 1,
            supplied=frozenset(supplied),
            # Only a live source holds a secret: an export's adapter has none to hide.
            env=is_live(factory),
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
        raise _first(error.problems, file) from None


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
