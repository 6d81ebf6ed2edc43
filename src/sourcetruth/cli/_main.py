"""The commands of the ``sourcetruth`` program, their options, and how they fail."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import shlex
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final, NoReturn, TextIO

from sourcetruth.adapters import registry
from sourcetruth.adapters.sources.base import Notice, Reading, address_book_saves
from sourcetruth.app.bookfolder import KEY_FILE_VARIABLE, BookFolder
from sourcetruth.app.sending import send
from sourcetruth.app.settings import STARTER, check_adapters, parse_settings
from sourcetruth.audit import AuditRecord, Outcome, Why, why
from sourcetruth.changes import (
    AddressBookRemove,
    AddressBookSave,
    ClearOverride,
    ConfirmSync,
    Link,
    RemoveGroup,
    SetGroup,
    SetOverride,
    Unlink,
)
from sourcetruth.cli._progress import Progress
from sourcetruth.cli._render import Renderer, as_json
from sourcetruth.effective import contact_at, contacts_at, explain
from sourcetruth.exceptions import (
    AdapterError,
    ConfirmationMismatchError,
    OutOfOrderError,
    SchemaVersionError,
    SourceDataError,
    SourceTruthError,
    UnknownContactError,
    UsageError,
    format_errors,
)
from sourcetruth.merge import Change
from sourcetruth.messages import (
    DeliveryResult,
    DeliveryStatus,
    Envelope,
    Message,
    Plan,
    SendMode,
    plan,
)
from sourcetruth.model import (
    ADDRESS_BOOK,
    FIELDS,
    Book,
    Channel,
    Contact,
    ContactData,
    Email,
    EmailType,
    GroupDefinition,
    OverrideLifetime,
    Phone,
    PhoneType,
    Record,
    Role,
    Rule,
    SourceKind,
    record_id,
    split_record_id,
)
from sourcetruth.policy import Policy
from sourcetruth.protocols import Transport
from sourcetruth.report import MergeResult, Report, Status
from sourcetruth.schedule import next_sync, when_effective
from sourcetruth.worklists import before_next_sync, data_quality, two_feeds, update_at_source

__all__ = ["EXIT_CODES", "main"]

_FINAL: Final = (DeliveryStatus.ACCEPTED, DeliveryStatus.REJECTED)

OK: Final = 0
#: Something the program did not expect: a bug; ``--debug`` shows where.
FAILED: Final = 1
USAGE: Final = 2
DATA: Final = 3
HELD: Final = 4
UNDELIVERED: Final = 5
STORE: Final = 6
INTERRUPTED: Final = 130
#: The reader of the output stopped reading (``sourcetruth contacts | head -1``): the
#: status a shell gives a program that SIGPIPE ended, 128 + 13.
PIPE_CLOSED: Final = 141

#: Each exit status and what it means.
EXIT_CODES: Final[Mapping[int, str]] = {
    OK: "done",
    FAILED: "an unexpected error (a bug): run again with --debug and report it",
    USAGE: "the command was wrong: an unknown option, contact, group or field",
    DATA: "an input file was rejected: fix the file (nothing was applied)",
    HELD: "a sync was held by the departure guard: check the export, then confirm it",
    UNDELIVERED: "a send left deliveries rejected or failed (resume by sending again)",
    STORE: "the book could not be read or written: a newer version, a conflict, or I/O",
    INTERRUPTED: "interrupted (Ctrl-C); a send can be resumed by running it again",
    PIPE_CLOSED: "the output's reader stopped reading (like 'head'); the rest was not printed",
}

#: How many times a send tries a delivery that failed and may be retried.
ATTEMPTS: Final = 3

#: How far after the clock a change may be made: a mistyped year (2062 for 2026)
#: would otherwise lock the book, which refuses a change made before its latest.
AHEAD: Final = timedelta(days=7)


def _now() -> datetime:
    """The clock: read once per command (see ``_Context.now``)."""
    return datetime.now(UTC)


class _Exit(Exception):
    """Leave with *code* after printing *message* (when given) on stderr."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line and exit 2, also in-process."""

    def error(self, message: str) -> NoReturn:
        raise _Exit(USAGE, f"{message} (see '{self.prog} --help')")


class _Context:
    """What every command gets: its arguments, output streams and the book."""

    def __init__(
        self, args: argparse.Namespace, out: TextIO, err: TextIO, environ: Mapping[str, str]
    ) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.environ = environ
        self._book: BookFolder | None = None
        #: The time the command runs at: one reading of the clock for all of it.
        self.now = _now()
        self._at: datetime | None = None

    @property
    def book(self) -> BookFolder:
        if self._book is None:
            self._book = BookFolder.open(self.args.book, environ=self.environ)
        return self._book

    @property
    def zone(self) -> tzinfo:
        zone: tzinfo = self.book.timezone
        return zone

    @property
    def render(self) -> Renderer:
        return Renderer(self.zone)

    @property
    def policy(self) -> Policy:
        """The policy for reading the book: no suppression key needed (only merges use it)."""
        policy: Policy = self.book.settings.policy
        return policy

    def close(self) -> None:
        if self._book is not None:
            self._book.close()

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")

    def lines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.say(line)

    def json(self, value: object) -> None:
        self.say(as_json(value))

    def time(self, text: str | None, option: str = "--at") -> datetime:
        """A time *option*: ISO 8601, read in the book's timezone when it has no offset."""
        if text is None or text == "now":
            return self.now
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            msg = f"{option}: {text!r} is not a time; write it like 2026-11-24T15:30 (ISO 8601)"
            raise UsageError(msg) from None
        if not 1900 <= value.year < 9000:
            # Far from any school's data, and near the calendar's ends, where time
            # arithmetic (the next sync, a timezone) overflows.
            msg = f"{option}: {text!r} is out of range: give a time from 1900 to 8999"
            raise UsageError(msg)
        return value if value.tzinfo is not None else value.replace(tzinfo=self.zone)

    @property
    def at(self) -> datetime:
        """``--at``, or now: the same value however often a command asks."""
        if self._at is None:
            self._at = self.time(getattr(self.args, "at", None))
        return self._at

    @property
    def change_at(self) -> datetime:
        """The time of a change to the book: ``--at``, refused far after the clock."""
        at = self.at
        if at - self.now > AHEAD:
            msg = (
                f"--at: {self.render.time(at)} is more than {AHEAD.days} days after now "
                f"({self.render.time(self.now)}); the book would then refuse every change "
                "made before it. Check the date"
            )
            raise UsageError(msg)
        return at

    @property
    def by(self) -> str:
        by: str = self.args.by
        return by

    def progress(self, label: str, total: int | None = None) -> Progress:
        return Progress(self.err, label, total=total)


@contextlib.contextmanager
def _forward(ctx: _Context) -> Iterator[None]:
    """A change before the book's latest is refused: say when that was, and what to do."""
    try:
        yield
    except OutOfOrderError as error:
        msg = (
            f"the book's latest change was made {ctx.render.time(error.latest)}, after this "
            f"change's time ({ctx.render.time(ctx.at)}); changes go forward in time: "
            "give --at a time from then on"
        )
        raise UsageError(msg) from None


def _apply(ctx: _Context, change: Change | Sequence[Change]) -> MergeResult:
    """Merge *change* into the book at ``--at`` (checked), and commit it."""
    at = ctx.change_at
    with _forward(ctx):
        return ctx.book.apply(change, at=at, by=ctx.by)


# -- book --------------------------------------------------------------------------


def _init(ctx: _Context) -> int:
    settings = STARTER
    folder = Path(ctx.args.book)
    if ctx.args.policy:
        try:
            settings = Path(ctx.args.policy).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            msg = f"cannot read the policy file {ctx.args.policy}: {_reason(error)}"
            raise UsageError(msg) from None
        # Checked here first, so that a mistake names the file the user gave.
        check_adapters(
            parse_settings(settings, file=ctx.args.policy, base=folder), file=ctx.args.policy
        )
    named = ctx.environ.get(KEY_FILE_VARIABLE)
    if named and not Path(named).parent.is_dir():
        msg = (
            f"the suppression key's folder {Path(named).parent} does not exist "
            f"({KEY_FILE_VARIABLE} names {named}): make the folder, or name a file elsewhere"
        )
        raise UsageError(msg)
    book = BookFolder.create(folder, settings=settings, store=ctx.args.store, environ=ctx.environ)
    ctx.say(f"Created a book in {book.path} ({ctx.args.store}).")
    ctx.say(f"Its policy is {book.path / 'policy.toml'}; 'sourcetruth policy' shows it.")
    if book.reused_key:
        ctx.say(
            f"It uses the existing suppression key at {named or book.path / 'suppression.key'}."
        )
    for key in book.settings.plaintext_secrets:
        ctx.err.write(
            f"notice: {key} holds a secret in the file; name an environment variable with "
            f"{key}_env instead\n"
        )
    for how in book.settings.sources.values():
        if how.mapping is not None and not how.mapping.is_file():
            ctx.say(
                f"Before syncing {how.name}, put its CSV mapping at {how.mapping} "
                "(see docs/adapters.md)."
            )
    return OK


def _reason(error: BaseException) -> str:
    """What went wrong reading or writing a file, without the file's content."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text (byte {error.start})"
    return error.__class__.__name__


def _policy(ctx: _Context) -> int:
    policy = ctx.policy
    settings = ctx.book.settings
    sources: list[dict[str, Any]] = []
    for name in policy.order:
        source = policy.source(name)
        how = settings.sources.get(name)
        schedule = source.schedule
        sources.append(
            {
                "name": name,
                "kind": source.kind.value,
                "covers": sorted(source.covers),
                "schedule": None if schedule is None else schedule.rule,
                "adapter": how.adapter if how else None,
                "next_sync": None if schedule is None else next_sync(schedule, ctx.at).isoformat(),
            }
        )
    transports = {c.value: t.adapter for c, t in sorted(settings.transports.items(), key=str)}
    for channel in Channel:
        transports.setdefault(channel.value, "outbox")
    if ctx.args.json:
        guard = policy.guard
        ctx.json(
            {
                "timezone": str(settings.timezone),
                "region": policy.default_region,
                "precedence": list(policy.order),
                "guard": {
                    "max_count": guard.max_count,
                    "max_fraction": guard.max_fraction,
                    "min_count": guard.min_count,
                    "enabled": guard.enabled,
                },
                "sources": sources,
                "transports": transports,
            }
        )
        return OK
    ctx.say(f"Timezone {settings.timezone}, phone region {policy.default_region}.")
    ctx.say("Sources, strongest first:")
    for s in sources:
        if s["kind"] == SourceKind.ADDRESS_BOOK.value:
            ctx.say(f"  {s['name']} (local: edits show at once; 'sourcetruth address-book')")
            ctx.say(f"    covers {', '.join(s['covers'])}")
            continue
        when = "no schedule"
        if s["schedule"] is not None:
            upcoming = ctx.render.time(datetime.fromisoformat(s["next_sync"]))
            when = f"syncs {s['schedule']}, next {upcoming}"
        reader = f"read with {s['adapter']}" if s["adapter"] else "no adapter set"
        ctx.say(f"  {s['name']} ({s['kind']}; {when}; {reader})")
        ctx.say(f"    covers {', '.join(s['covers'])}")
    guard = policy.guard
    ctx.say(
        f"Departure guard: hold a sync that departs more than {guard.max_count}, or more than "
        f"{guard.max_fraction:.0%} once at least {guard.min_count}"
        + ("" if guard.enabled else " (disabled)")
    )
    ctx.say("Transports: " + ", ".join(f"{c} by {t}" for c, t in sorted(transports.items())))
    return OK


def _journal(ctx: _Context) -> int:
    runs = ctx.book.journal()[-ctx.args.last :] if ctx.args.last else ctx.book.journal()
    if ctx.args.json:
        ctx.json(list(runs))
        return OK
    for run in runs:
        r = run.report
        ctx.say(
            f"{ctx.render.time(run.at)}  {run.status:<9} {ctx.render.what(r)} by {run.by}: "
            f"{ctx.render.counts(r)}"
        )
    return OK


# -- sources -------------------------------------------------------------------------


def _input(text: str) -> Path:
    """A file or folder the command reads: it must be there."""
    path = Path(text)
    if not path.exists():
        msg = f"there is no file or folder {text}"
        raise UsageError(msg)
    return path


def _newest_mtime(path: Path) -> datetime:
    try:
        if path.is_dir():
            times = [p.stat().st_mtime for p in path.rglob("*") if p.is_file()]
            stamp = max(times) if times else path.stat().st_mtime
        else:
            stamp = path.stat().st_mtime
    except OSError as error:
        msg = f"cannot read {path}: {_reason(error)}"
        raise UsageError(msg) from None
    return datetime.fromtimestamp(stamp, UTC)


def _synced_source(ctx: _Context, name: str) -> str:
    """*name*, checked to be a source a sync can read, read with an adapter that exists."""
    policy = ctx.book.settings.policy
    adapter = getattr(ctx.args, "adapter", None)
    if adapter is not None and adapter not in registry.available("source"):
        known = ", ".join(registry.available("source"))
        msg = f"--adapter: there is no source adapter called {adapter!r}; there are {known}"
        raise UsageError(msg)
    syncable = [s for s in policy.order if policy.source(s).kind is not SourceKind.ADDRESS_BOOK]
    if name == ADDRESS_BOOK:
        msg = "the address book is not synced: use 'sourcetruth address-book import FILE'"
        raise UsageError(msg)
    if name not in syncable:
        msg = f"the policy has no source named {name!r}; its sources are {', '.join(syncable)}"
        raise UsageError(msg)
    return name


@contextlib.contextmanager
def _reading_input() -> Iterator[None]:
    """An input that cannot be read (a broken zip, a file gone) is the input's fault: exit 3."""
    try:
        yield
    except AdapterError as error:
        raise SourceDataError(str(error)) from error


def _read(ctx: _Context, source: str, path: Path, extracted_at: datetime) -> Reading:
    with _reading_input():
        reading = ctx.book.read_source(
            source, path, extracted_at=extracted_at, adapter=getattr(ctx.args, "adapter", None)
        )
    return reading


def _notices(ctx: _Context, notices: Sequence[Notice]) -> None:
    for n in notices:
        where = ":".join(str(p) for p in (n.file, n.line) if p is not None)
        field = f" [{n.field}]" if n.field else ""
        ctx.err.write(f"notice: {where}{field}: {n.message} ({n.code})\n")


def _sync(ctx: _Context) -> int:
    args = ctx.args
    book = ctx.book
    source = _synced_source(ctx, args.source)
    path = _input(args.path)
    at = ctx.change_at  # also for a dry run: it shows a change the book would make
    extracted_at = (
        ctx.time(args.extracted_at, "--extracted-at") if args.extracted_at else _newest_mtime(path)
    )
    if not args.extracted_at and extracted_at > at:
        msg = (
            f"the export's files were written {ctx.render.time(extracted_at)}, after the sync's "
            f"time ({ctx.render.time(at)}): say when it was taken with --extracted-at"
        )
        raise UsageError(msg)
    with ctx.progress(f"reading {path.name}") as progress:
        reading = _read(ctx, source, path, extracted_at)
        progress.phase("merging")
        change = (
            reading.snapshot if not args.confirm else ConfirmSync(reading.snapshot, args.confirm)
        )
        try:
            with _forward(ctx):
                if args.dry_run:
                    result = book.dry_run(change, at=at, by=ctx.by)
                else:
                    result = book.apply(change, at=at, by=ctx.by)
        except ConfirmationMismatchError as error:
            msg = f"{error}: run the sync again without --confirm for a new token"
            raise UsageError(msg) from None
    _notices(ctx, reading.notices)
    report = result.report
    command = None
    if report.held is not None:
        # The same command, with the token: run as printed, it applies this export.
        words = ["sourcetruth", "--book", os.fspath(book.path), "sync", source, args.path]
        if args.adapter:
            words += ["--adapter", args.adapter]
        words += ["--extracted-at", extracted_at.isoformat()]
        if args.at:
            words += ["--at", at.isoformat()]
        words += ["--confirm", report.held.token]
        command = shlex.join(words)
    if args.json:
        ctx.json(
            {
                "dry_run": args.dry_run,
                "rejected_rows": reading.rejected,
                "notices": list(reading.notices),
                "report": report,
                "confirm_command": command,
            }
        )
    else:
        ctx.lines(ctx.render.report(report, dry_run=args.dry_run))
        if reading.rejected:
            ctx.say(f"  {reading.rejected} row(s) rejected: read as a delta, so nobody departed")
    if command is not None:
        if not args.json:
            ctx.say("  Check the export. If it is right, apply it with:")
            ctx.say(f"  {command}")
        held = "would be held" if args.dry_run else "was held"
        raise _Exit(HELD, f"the sync {held} by the departure guard: nothing was applied")
    return OK


def _when(ctx: _Context) -> int:
    policy = ctx.book.settings.policy
    if ctx.args.source not in policy.order:
        msg = (
            f"the policy has no source named {ctx.args.source!r}; "
            f"its sources are {', '.join(policy.order)}"
        )
        raise UsageError(msg)
    changed = ctx.time(ctx.args.changed_at, "--changed-at")
    effective = when_effective(policy, ctx.args.source, changed)
    if ctx.args.json:
        ctx.json({"source": ctx.args.source, "changed_at": changed, "effective_at": effective})
        return OK
    ctx.say(
        f"A change made in {ctx.args.source} at {ctx.render.time(changed)} shows in the book "
        f"at {ctx.render.time(effective)}."
    )
    return OK


# -- address book and overrides ----------------------------------------------------------


def _contact_data(args: argparse.Namespace) -> tuple[ContactData, frozenset[str]]:
    """The fields the options give, and which fields they name."""
    values: dict[str, Any] = {}
    if args.given is not None:
        values["given_name"] = args.given
    if args.family is not None:
        values["family_name"] = args.family
    if args.role is not None:
        values["role"] = Role(args.role)
    for option, given, field in (
        ("--mobile", args.mobile, "phones"),
        ("--phone", args.phone, "phones"),
        ("--work-phone", args.work_phone, "phones"),
        ("--email", args.email, "emails"),
        ("--work-email", args.work_email, "emails"),
    ):
        if any(not value.strip() for value in given or ()):
            msg = f"{option}: an empty value; to empty the field, use --clear {field}"
            raise UsageError(msg)
    phones = [Phone(n, PhoneType.MOBILE) for n in args.mobile or ()]
    phones += [Phone(n, PhoneType.HOME) for n in args.phone or ()]
    phones += [Phone(n, PhoneType.WORK) for n in args.work_phone or ()]
    if phones:
        values["phones"] = tuple(phones)
    emails = [Email(a, EmailType.HOME) for a in args.email or ()]
    emails += [Email(a, EmailType.WORK) for a in args.work_email or ()]
    if emails:
        values["emails"] = tuple(emails)
    if args.year is not None:
        values["year_group"] = args.year
    if args.reg is not None:
        values["registration_group"] = args.reg
    for name in args.clear or ():
        if name in values:
            msg = f"--clear {name} and a value for {name} contradict each other"
            raise UsageError(msg)
        values[name] = ContactData().get(name)
    return ContactData(**values), frozenset(values)


def _address_book_add(ctx: _Context) -> int:
    data, _ = _contact_data(ctx.args)
    if not (data.given_name or data.family_name):
        msg = "a new contact needs a name: --given and/or --family"
        raise UsageError(msg)
    key = ctx.args.key
    if key is not None and not key.strip():
        msg = "--key: give a key, or leave --key out for a new random one"
        raise UsageError(msg)
    contact_id = record_id(ADDRESS_BOOK, key or uuid.uuid4().hex[:12])
    if contact_id in ctx.book.load().contacts:
        msg = f"{contact_id} already exists: use 'address-book edit'"
        raise UsageError(msg)
    result = _apply(ctx, AddressBookSave(contact_id, data))
    return _after_change(ctx, result.report, f"Saved {contact_id}.")


def _address_book_edit(ctx: _Context) -> int:
    data, named = _contact_data(ctx.args)
    if not named:
        msg = "say what to change: --email, --mobile, --given, --clear FIELD, ..."
        raise UsageError(msg)
    book = ctx.book.load()
    if ctx.args.contact not in book.contacts:
        # A save would make a new contact: that is 'add', with a name.
        msg = f"the book holds no contact {ctx.args.contact!r}: add one with 'address-book add'"
        raise UnknownContactError(msg)
    if "relationships" in named:
        # As 'override set' says: a source's links between guardians and pupils are the
        # source's to change, even where the source does not cover them.
        home = contact_at(book, ctx.args.contact, policy=ctx.policy, at=ctx.change_at).home
        if split_record_id(home)[0] != ADDRESS_BOOK:
            msg = (
                f"{ctx.args.contact}'s home is {split_record_id(home)[0]}: links between "
                "guardians and pupils are changed at the source"
            )
            raise UsageError(msg)
    change = AddressBookSave(ctx.args.contact, data, named)
    result = _apply(ctx, change)
    return _after_change(
        ctx, result.report, f"Saved {', '.join(sorted(named))} of {ctx.args.contact}."
    )


def _address_book_remove(ctx: _Context) -> int:
    result = _apply(ctx, AddressBookRemove(ctx.args.contact))
    return _after_change(ctx, result.report, f"Removed {ctx.args.contact} (restorable by a save).")


def _address_book_import(ctx: _Context) -> int:
    from sourcetruth.adapters.sources.vcard import VCardAdapter

    path = _input(ctx.args.file)
    with _reading_input():
        reading = VCardAdapter(path).read_entries()
    _notices(ctx, reading.notices)
    saves = address_book_saves(reading.entries)
    if not saves:
        msg = "the file holds no vCards"
        raise SourceDataError(msg, file=ctx.args.file)
    with ctx.progress(f"importing {len(saves)} card(s)"):
        result = _apply(ctx, saves)
    return _after_change(ctx, result.report, f"Imported {len(saves)} card(s).")


def _address_book_export(ctx: _Context) -> int:
    from sourcetruth.adapters.sources.vcard import VCardAdapter

    target = _output(ctx, ctx.args.file)
    entries = []
    for contact in contacts_at(ctx.book.load(), policy=ctx.policy, at=ctx.at):
        if contact.home.startswith(f"{ADDRESS_BOOK}:") and not contact.departed:
            entries.append(Record(contact.home.partition(":")[2], contact.data))
    VCardAdapter(target, version=ctx.args.version).write_entries(entries)
    ctx.say(f"Wrote {len(entries)} address-book contact(s) to {ctx.args.file}.")
    return OK


def _override_value(field: str, values: Sequence[str]) -> ContactData:
    if any(not value.strip() for value in values):
        msg = f"an empty value for {field}: give the value the field should hold"
        raise UsageError(msg)
    if field == "phones":
        return ContactData(phones=tuple(Phone(v) for v in values))
    if field == "emails":
        return ContactData(emails=tuple(Email(v) for v in values))
    if field == "relationships":
        msg_0 = "links between guardians and pupils are changed at the source"
        raise UsageError(msg_0)
    if len(values) != 1:
        msg = f"{field} takes one value"
        raise UsageError(msg)
    if field == "role":
        try:
            return ContactData(role=Role(values[0]))
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            msg_0 = f"a role is one of {roles}"
            raise UsageError(msg_0) from None
    texts: dict[str, Any] = {field: values[0]}
    return ContactData(**texts)


def _override_set(ctx: _Context) -> int:
    args = ctx.args
    lifetime = OverrideLifetime.NEXT_SYNC
    until = None
    if args.until:
        lifetime, until = OverrideLifetime.UNTIL, ctx.time(args.until, "--until")
    elif args.while_source_unchanged:
        lifetime = OverrideLifetime.SOURCE_CHANGE
    change = SetOverride(
        args.contact, args.field, _override_value(args.field, args.values), lifetime, until
    )
    result = _apply(ctx, change)
    return _after_change(ctx, result.report, f"Override set on {args.field} of {args.contact}.")


def _override_clear(ctx: _Context) -> int:
    change = ClearOverride(ctx.args.contact, ctx.args.field)
    result = _apply(ctx, change)
    return _after_change(ctx, result.report, "Override cleared.")


def _after_change(ctx: _Context, report: Report, done: str) -> int:
    if ctx.args.json:
        ctx.json(report)
    else:
        ctx.say(
            done
            if report.status is Status.APPLIED
            else "Nothing changed: the book already says so."
        )
        ctx.lines(ctx.render.report(report)[1:])
    return OK


# -- looking -------------------------------------------------------------------------


def _searched(contact: Contact) -> str:
    """What ``contacts --search`` looks in: id, name, phones (also as bare digits), emails."""
    data = contact.data
    numbers = [p.number for p in data.phones]
    words = [contact.id, data.given_name, data.family_name, *numbers]
    words += ["".join(ch for ch in n if ch.isdigit()) for n in numbers]
    words += [e.address for e in data.emails]
    return "\n".join(words).casefold()


def _contacts(ctx: _Context) -> int:
    needle = (ctx.args.search or "").strip().casefold()
    found = [
        c
        for c in contacts_at(ctx.book.load(), policy=ctx.policy, at=ctx.at)
        if (ctx.args.departed or not c.departed)
        and (ctx.args.role is None or c.data.role.value == ctx.args.role)
        and (
            not needle
            or needle in _searched(c)
            or needle in f"{c.data.given_name} {c.data.family_name}".casefold()
        )
    ]
    if ctx.args.json:
        ctx.json(found)
        return OK
    for c in found:
        name = f"{c.data.given_name} {c.data.family_name}".strip()
        gone = "  (departed)" if c.departed else ""
        ctx.say(f"{c.id:<28} {name:<28} {c.data.role.value}{gone}")
    ctx.say(f"{len(found)} contact(s).")
    return OK


def _show(ctx: _Context) -> int:
    contact = contact_at(ctx.book.load(), ctx.args.contact, policy=ctx.policy, at=ctx.at)
    if ctx.args.json:
        ctx.json(contact)
    else:
        ctx.lines(ctx.render.contact(contact))
    return OK


def _explain(ctx: _Context) -> int:
    told = explain(ctx.book.load(), ctx.args.contact, ctx.args.field, policy=ctx.policy, at=ctx.at)
    if ctx.args.json:
        ctx.json(told)
    else:
        ctx.lines(ctx.render.explanation(told))
    return OK


# -- groups and links ----------------------------------------------------------------


def _rule(args: argparse.Namespace) -> Rule | None:
    if not (args.roles or args.years or args.regs or args.guardians):
        if args.max_priority is not None:
            msg = "--max-priority goes with --guardians"
            raise UsageError(msg)
        return None
    return Rule(
        roles=frozenset(Role(r) for r in args.roles or ()),
        year_groups=frozenset(args.years or ()),
        registration_groups=frozenset(args.regs or ()),
        guardians_of=args.guardians,
        max_priority=args.max_priority,
    )


def _group_set(ctx: _Context) -> int:
    name = ctx.args.name
    if not name.strip():
        msg = "a group needs a name"
        raise UsageError(msg)
    if ":" in name:
        # An audience word with ':' is a contact id: such a group could never be named.
        msg = f"a group's name holds no ':' ({name!r}); 'mis:G1' would be read as a contact id"
        raise UsageError(msg)
    group = GroupDefinition(name, frozenset(ctx.args.member or ()), _rule(ctx.args))
    if not (group.members or group.rule):
        msg_0 = "a group needs --member ids and/or a rule (--year, --role, ...)"
        raise UsageError(msg_0)
    held = ctx.book.load().contacts
    missing = sorted(m for m in group.members if m not in held)
    if missing:
        msg = f"group {name!r} names contacts the book does not hold: {_names(missing)}"
        raise UnknownContactError(msg)
    result = _apply(ctx, SetGroup(group))
    return _after_change(ctx, result.report, f"Group {name} saved.")


def _names(ids: Sequence[str]) -> str:
    """Contact ids for a message: plain, and an empty one visible."""
    return ", ".join(i if i.strip() else repr(i) for i in ids)


def _group_remove(ctx: _Context) -> int:
    result = _apply(ctx, RemoveGroup(ctx.args.name))
    return _after_change(ctx, result.report, f"Group {ctx.args.name} removed.")


def _groups(ctx: _Context) -> int:
    at = ctx.at
    found = []
    for _, versions in sorted(ctx.book.load().groups.items()):
        current = [v for v in versions if v.since <= at]
        if current and current[-1].group is not None:
            found.append(current[-1].group)
    if ctx.args.json:
        ctx.json(found)
        return OK
    for g in found:
        ctx.say(ctx.render.group(g))
    ctx.say(f"{len(found)} group(s).")
    return OK


def _link(ctx: _Context) -> int:
    result = _apply(ctx, Link(ctx.args.record, ctx.args.other))
    return _after_change(ctx, result.report, f"Linked {ctx.args.record} and {ctx.args.other}.")


def _unlink(ctx: _Context) -> int:
    result = _apply(ctx, Unlink(ctx.args.record))
    return _after_change(ctx, result.report, f"Unlinked {ctx.args.record}.")


# -- messages ----------------------------------------------------------------------------


def _message(ctx: _Context, *, message_id: str, subject: str, body: str) -> Message:
    args = ctx.args
    groups = tuple(a for a in args.audience if ":" not in a)
    contacts = tuple(a for a in args.audience if ":" in a)
    rule = _rule(args)
    channels = tuple(Channel(c) for c in args.channel) or (Channel.EMAIL,)
    return Message(
        message_id,
        subject,
        body,
        channels=channels,
        mode=SendMode.EACH if getattr(args, "each", False) else SendMode.FIRST,
        groups=groups,
        rules=() if rule is None else (rule,),
        contacts=contacts,
    )


def _plan_lines(ctx: _Context, planned: Plan) -> list[str]:
    r = ctx.render
    lines = []
    for d in planned.deliveries:
        origin = "; ".join(r.provenance(p) for p in d.provenance)
        lines.append(f"  {d.channel.value:<5} {d.address}  ({', '.join(d.contact_ids)})")
        lines.append(f"        from {origin}")
    for channel, u in planned.fallbacks:
        lines.append(f"  fell back from {channel.value} for {u.contact_id}: {u.reason}")
    for channel, u in planned.unreachable:
        lines.append(f"  unreachable on {channel.value}: {u.contact_id}: {u.reason}")
    return lines


def _recipients(ctx: _Context) -> int:
    if not ctx.args.audience and _rule(ctx.args) is None:
        msg = "name an audience: group names, contact ids, or a rule (--year 9 ...)"
        raise UsageError(msg)
    message = _message(ctx, message_id="recipients", subject="", body="")
    book = ctx.book.load()
    _check_ids(book, message.contacts)
    planned = plan(book, message, policy=ctx.policy, at=ctx.at)
    if ctx.args.json:
        ctx.json(planned)
        return OK
    ctx.lines(_plan_lines(ctx, planned))
    ctx.say(
        f"{len(planned.deliveries)} address(es) reach {len(planned.reached)} contact(s); "
        f"{len({u.contact_id for _, u in planned.unreachable})} unreachable."
    )
    return OK


def _check_ids(book: Book, ids: Sequence[str]) -> None:
    """Refuse contact ids the book never held: a typo would reach nobody, and say so late.

    A departed contact, or a record linked into another contact, is held: the
    plan says it is unreachable, or reaches it where it now lives.
    """
    held = set(book.contacts)
    held.update(record_id(source, key) for source, keys in book.records.items() for key in keys)
    missing = [i for i in ids if i not in held]
    if missing:
        msg = (
            f"the book holds no contact {_names(missing)} (check the id: "
            "'sourcetruth contacts --search NAME' finds people)"
        )
        raise UnknownContactError(msg)


class _Counting:
    """A transport that advances a progress line once per delivery, as each is done with.

    A delivery is done with when it has its final answer (accepted or rejected),
    or fails for good: not to be retried, or on its last attempt. A retry is
    the same delivery again, and is not counted twice.
    """

    def __init__(self, inner: Transport, progress: Progress, attempts: int) -> None:
        self._inner = inner
        self._progress = progress
        self._attempts = attempts
        self._tries: dict[str, int] = {}
        self._done: set[str] = set()

    @property
    def channel(self) -> Channel:
        return self._inner.channel

    def send(self, batch: Sequence[Envelope]) -> list[DeliveryResult]:
        results: list[DeliveryResult] | None = None
        try:
            results = self._inner.send(batch)
            return results
        finally:
            self._count(batch, results)

    def _count(self, batch: Sequence[Envelope], results: object) -> None:
        answers = (
            {r.key: r for r in results if isinstance(r, DeliveryResult)}
            if isinstance(results, list)
            else {}
        )
        for envelope in batch:
            key = envelope.key
            tries = self._tries[key] = self._tries.get(key, 0) + 1
            answer = answers.get(key)
            final = answer is not None and (answer.status in _FINAL or not answer.retryable)
            if (final or tries >= self._attempts) and key not in self._done:
                self._done.add(key)
                self._progress.advance()


def _audit(
    planned: Plan,
    sent_at: datetime,
    results: Mapping[str, DeliveryResult],
    handed_over: frozenset[str] = frozenset(),
) -> AuditRecord:
    """The audit of *planned* as far as it is known: *results*, by delivery key.

    A delivery handed over with no answer yet (the send stopped) is a failure
    to retry; one never handed over has no result.
    """
    outcomes = []
    for d in planned.deliveries:
        result = results.get(d.key)
        if result is None and d.key in handed_over:
            result = DeliveryResult.failed(
                d.key, "handed over, but the send stopped before an answer", retryable=True
            )
        outcomes.append(Outcome(d, result))
    return AuditRecord(
        planned.message, planned.at, sent_at, outcomes, planned.unreachable, planned.fallbacks
    )


def _send(ctx: _Context) -> int:
    args = ctx.args
    if not args.id.strip():
        msg = "--id: give the message an id, like trip-2026-11-24"
        raise UsageError(msg)
    if not args.audience and _rule(args) is None:
        msg = "name an audience: group names, contact ids, or a rule (--year 9 ...)"
        raise UsageError(msg)
    body = args.body
    if args.body_file:
        try:
            body = Path(args.body_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            msg = f"cannot read the body file {args.body_file}: {_reason(error)}"
            raise UsageError(msg) from None
    if body is None:
        msg_0 = "give the message text: --body TEXT or --body-file FILE"
        raise UsageError(msg_0)
    if not body.strip():
        msg_0 = "the message's text is empty: give it with --body or --body-file"
        raise UsageError(msg_0)
    folder = ctx.book
    message = _message(ctx, message_id=args.id, subject=args.subject, body=body)
    book = folder.load()
    _check_ids(book, message.contacts)
    previous = _sent_before(folder, args.id)
    if previous is not None and previous.message != message:
        msg = (
            f"a message {args.id!r} was sent {ctx.render.time(previous.sent_at)} with other "
            "text, channels or audience: give this one a new --id"
        )
        raise UsageError(msg)
    # Sending again resumes the message as it was planned, unless told another time.
    at = previous.planned_at if previous is not None and args.at is None else ctx.at
    planned = plan(book, message, policy=ctx.policy, at=at)
    log = folder.delivery_log
    known = log.results()
    earlier = sum(
        (r := known.get(d.key)) is not None and r.status in _FINAL for d in planned.deliveries
    )
    if not args.deliver:
        if args.json:
            ctx.json({"dry_run": True, "plan": planned, "delivered_before": earlier})
            return OK
        ctx.lines(_plan_lines(ctx, planned))
        if previous is not None:
            ctx.say(
                f"{args.id} was sent {ctx.render.time(previous.sent_at)}, as planned "
                f"{ctx.render.time(at)}; {earlier} delivery(ies) have their answer and "
                "would not be sent again."
            )
        ctx.say(
            f"Dry run: {len(planned.deliveries)} delivery(ies) planned, nothing sent. "
            "Add --deliver to send."
        )
        return OK
    channels = tuple(dict.fromkeys(d.channel for d in planned.deliveries))
    transports = folder.transports(channels)
    sent_at = ctx.now
    # The audit is kept before anything is handed over: should the send stop half-way,
    # 'why' still answers, and sending again resumes the message as it was planned.
    folder.save_audit(_audit(planned, sent_at, known))
    try:
        with ctx.progress("sending", total=len(planned.deliveries) - earlier) as progress:
            counted: dict[Channel, Transport] = {
                c: _Counting(t, progress, ATTEMPTS) for c, t in transports.items()
            }
            record = send(planned, counted, log=log, sent_at=sent_at, attempts=ATTEMPTS)
    except BaseException:
        # Interrupted, or the delivery log failed: keep what is known, then stop.
        with contextlib.suppress(Exception):
            folder.save_audit(_audit(planned, sent_at, log.results(), log.handed_over()))
        raise
    saved = folder.save_audit(record)
    accepted = record.count(DeliveryStatus.ACCEPTED)
    bad = len(record.outcomes) - accepted
    if args.json:
        ctx.json(
            {
                "dry_run": False,
                "audit": record,
                "audit_file": os.fspath(saved),
                "delivered_before": earlier,
            }
        )
    else:
        for outcome in record.outcomes:
            d, result = outcome.delivery, outcome.result
            status = "not handed over" if result is None else result.status.value
            reason = f" ({result.reason})" if result is not None and result.reason else ""
            ctx.say(f"  {d.channel.value:<5} {d.address}  {status}{reason}")
        for channel, u in (*record.fallbacks, *record.unreachable):
            verb = "fell back from" if (channel, u) in record.fallbacks else "unreachable on"
            ctx.say(f"  {verb} {channel.value}: {u.contact_id}: {u.reason}")
        again = f" ({earlier} of them before this run, not sent again)" if earlier else ""
        ctx.say(f"Sent {args.id}: {accepted} accepted{again}, {bad} not; the audit is in {saved}.")
    if bad:
        rejected = record.count(DeliveryStatus.REJECTED)
        parts = []
        if rejected:
            parts.append(f"{rejected} rejected (final: the audit says why)")
        if bad - rejected:
            parts.append(
                f"{bad - rejected} failed or not handed over (send again with the same --id "
                "to retry them)"
            )
        raise _Exit(UNDELIVERED, f"{args.id}: " + "; ".join(parts))
    return OK


def _sent_before(book: BookFolder, message_id: str) -> AuditRecord | None:
    try:
        return book.audit(message_id)
    except UsageError:  # never sent
        return None


def _why(ctx: _Context) -> int:
    record = ctx.book.audit(ctx.args.message)
    channels = (
        [Channel(ctx.args.channel)]
        if ctx.args.channel
        else list(dict.fromkeys(record.message.channels))
    )
    book = ctx.book.load()
    answers: list[Why] = []
    for channel in channels:
        try:
            answers.append(why(record, ctx.args.contact, channel, book=book, policy=ctx.policy))
        except UnknownContactError:
            # Sent on its first channel, a person was never tried on the others.
            if ctx.args.channel or (channel is channels[-1] and not answers):
                raise
    if ctx.args.json:
        ctx.json(answers)
        return OK
    r = ctx.render
    for a in answers:
        if a.address is None:
            ctx.say(f"{a.channel.value}: not sent to {a.contact_id}: {a.reason}")
            continue
        result = "not handed over" if a.result is None else a.result.status.value
        ctx.say(f"{a.channel.value}: {a.address} ({result})")
        if a.provenance is not None:
            ctx.say(f"  from {r.provenance(a.provenance)}")
        for event in a.overrides:
            ctx.say(f"  override: {r.override(event.override)}")
        if a.later is not None:
            ctx.say(
                f"  the source changed it later: applied {r.time(a.later.applied_at)} "
                f"(sync {a.later.sync}), after this message was planned"
            )
    return OK


# -- reports, export, erase -----------------------------------------------------------


def _report(ctx: _Context) -> int:
    book = ctx.book.load()
    policy = ctx.policy
    at = ctx.at
    r = ctx.render
    kind = ctx.args.report
    if kind == "update-at-source":
        since = ctx.time(ctx.args.since, "--since") if ctx.args.since else None
        found = update_at_source(book, policy=policy, at=at, since=since)
        if ctx.args.json:
            ctx.json(found)
            return OK
        ctx.say(f"Lost at a sync ({len(found.lost)}): update these at the source")
        for e in found.lost:
            ctx.say(f"  {r.override(e.override)}; lost {r.time(e.ended_at)}")
        ctx.say(f"In force ({len(found.in_force)})")
        for f in found.in_force:
            ctx.say(f"  {r.override(f.override)}; ends {r.time(f.ends_at)}")
    elif kind == "before-next-sync":
        snapshot = None
        source = _synced_source(ctx, ctx.args.source)
        if ctx.args.snapshot:
            path = _input(ctx.args.snapshot)
            extracted = (
                ctx.time(ctx.args.extracted_at, "--extracted-at")
                if ctx.args.extracted_at
                else _newest_mtime(path)
            )
            reading = _read(ctx, source, path, extracted)
            _notices(ctx, reading.notices)
            snapshot = reading.snapshot
            # A dry run of the sync: erased people stay out of it, which takes the key.
            policy = ctx.book.policy
        elif ctx.args.extracted_at:
            msg = "--extracted-at goes with --snapshot"
            raise UsageError(msg)
        ends = before_next_sync(book, source, policy=policy, at=at, snapshot=snapshot)
        if ctx.args.json:
            ctx.json(ends)
            return OK
        if ends.at is None:
            ctx.say(f"{ends.source} has no schedule; its next sync ends {len(ends.ending)} edit(s)")
        else:
            ctx.say(
                f"The next {ends.source} sync ({r.time(ends.at)}) ends {len(ends.ending)} edit(s)"
            )
        outcomes = {id(e.override): e.outcome.value for e in ends.outcomes}
        for o in ends.ending:
            ctx.say(f"  {r.override(o)}" + (f": {outcomes[id(o)]}" if id(o) in outcomes else ""))
    elif kind == "two-feeds":
        found_dups = two_feeds(book, policy=policy)
        if ctx.args.json:
            ctx.json(found_dups)
            return OK
        for d in found_dups:
            ctx.say(f"  {d.record} and {d.other}: {', '.join(d.reasons)}")
        ctx.say(f"{len(found_dups)} possible duplicate(s); link them with 'sourcetruth link'.")
    else:
        problems = data_quality(book, policy=policy, at=at)
        if ctx.args.json:
            ctx.json(problems)
            return OK
        for p in problems:
            ctx.say(f"  {p.contact_id} {p.field}: {p.kind}: {p.detail}")
        ctx.say(f"{len(problems)} problem(s).")
    return OK


def _export(ctx: _Context) -> int:
    from sourcetruth.adapters.sources.export import write_export

    target = _output(ctx, ctx.args.file)
    at = ctx.at
    write_export(
        target, ctx.book.load(), policy=ctx.policy, at=at, include_departed=ctx.args.departed
    )
    ctx.say(f"Wrote the book at {ctx.render.time(at)} to {ctx.args.file}.")
    return OK


#: The book folder's own files, which no export may replace.
_OWN_FILES: Final = (
    "policy.toml",
    "book.sqlite",
    "book.sqlite-journal",
    "book.sqlite-wal",
    "book.sqlite-shm",
    "book.json",
    "suppression.key",
    "deliveries.jsonl",
)
#: The book folder's own folders: nothing in them is an export's to write.
_OWN_FOLDERS: Final = ("audit", "outbox")


def _output(ctx: _Context, text: str) -> Path:
    """The file an export writes: never the book folder's own, nor an existing one unless --force.

    The book's files are compared as resolved paths (a symlink or ``..`` does
    not hide them), and as the same file on disk where they exist.
    """
    if not text.strip():
        msg = "give the export a file name"
        raise UsageError(msg)
    path = Path(text)
    folder = ctx.book.path.resolve()
    target = path.resolve()
    own = [folder / name for name in _OWN_FILES]
    own.append(Path(ctx.environ.get(KEY_FILE_VARIABLE) or folder / "suppression.key").resolve())
    own += [how.mapping.resolve() for how in ctx.book.settings.sources.values() if how.mapping]
    folders = [folder / name for name in _OWN_FOLDERS]
    for transport in ctx.book.settings.transports.values():
        if transport.adapter != "outbox":
            continue
        where = transport.options.get("folder")
        variable = transport.options.get("folder_env")
        if where is None and isinstance(variable, str):
            where = ctx.environ.get(variable)
        if isinstance(where, str) and where:
            folders.append((folder / where).resolve())
    mine = target in own or any(target == f or f in target.parents for f in folders)
    if not mine and target.exists():
        mine = any(_same_file(target, f) for f in own)
    if mine:
        msg = f"{text} is one of the book folder's own files: write the export somewhere else"
        raise UsageError(msg)
    if path.is_dir():
        msg = f"{text} is a folder: give the export a file name"
        raise UsageError(msg)
    if (path.exists() or path.is_symlink()) and not ctx.args.force:
        msg = f"{text} already exists: add --force to replace it, or choose another name"
        raise UsageError(msg)
    return path


def _same_file(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def _erase(ctx: _Context) -> int:
    if not ctx.args.yes:
        msg = (
            f"erasing {ctx.args.contact} cannot be undone: add --yes to erase the person, "
            "their history and their journal entries"
        )
        raise UsageError(msg)
    at = ctx.change_at
    with _forward(ctx):
        result, rewritten = ctx.book.erase(
            ctx.args.contact, at=at, by=ctx.by, suppress=not ctx.args.no_suppress
        )
    _after_change(ctx, result.report, f"Erased {ctx.args.contact}.")
    if rewritten and not ctx.args.json:
        ctx.say(
            f"  taken out of the audit of {len(rewritten)} sent message(s), the outbox "
            "and the delivery log"
        )
    # An audit record that could not be read may still hold them: say so, never silently.
    for file in getattr(ctx.book, "unreadable_audits", ()):
        ctx.err.write(
            f"notice: {file}: the audit record cannot be read, so it may still hold "
            f"{ctx.args.contact}: repair it and erase again, or delete it\n"
        )
    return OK


def _demo(ctx: _Context) -> int:
    from sourcetruth.app import demo

    demo.run(ctx.out, ctx.args.folder, environ=ctx.environ)
    return OK


# -- the parser --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sourcetruth",
        description="Keep a school's contact book: sync sources, edit, explain, send, report.",
        epilog="Exit codes: "
        + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
    )
    book_help = "the book folder (default: $SOURCETRUTH_BOOK, else the current folder)"
    by_help = "who is making changes, for the record (default: $SOURCETRUTH_USER or your login)"
    parser.add_argument("--book", default=None, help=book_help)
    parser.add_argument("--by", default=None, help=by_help)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    # The same options after the command (`sourcetruth sync mis x --book b`); given
    # there, they win over the ones before it.
    common = _Parser(add_help=False)
    common.add_argument("--book", default=argparse.SUPPRESS, help=book_help)
    common.add_argument("--by", default=argparse.SUPPRESS, help=by_help)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str,
        run: Callable[[_Context], int],
        help: str,
        *,
        json_option: bool = True,
        at: bool = True,
        parent: Any = commands,
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(
            name, help=help, description=help, parents=[common]
        )
        sub.set_defaults(run=run, json=False)
        if json_option:
            sub.add_argument("--json", action="store_true", help="print JSON")
        if at:
            sub.add_argument(
                "--at", help="the time (ISO 8601; default now; no offset: the book's timezone)"
            )
        return sub

    def rule_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--role",
            dest="roles",
            action="append",
            choices=[r.value for r in Role],
            help="rule: this role (repeatable)",
        )
        sub.add_argument("--year", dest="years", action="append", help="rule: this year group")
        sub.add_argument("--reg", dest="regs", action="append", help="rule: registration group")
        sub.add_argument(
            "--guardians",
            action="store_true",
            help="rule: the guardians of the pupils the rule selects",
        )
        sub.add_argument(
            "--max-priority",
            type=_count,
            metavar="N",
            help="with --guardians: only those of priority 1 to N",
        )

    def data_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--given", help="given name")
        sub.add_argument("--family", help="family name")
        sub.add_argument("--role", choices=[r.value for r in Role])
        sub.add_argument("--mobile", action="append", help="a mobile number (repeatable)")
        sub.add_argument("--phone", action="append", help="a home phone number")
        sub.add_argument("--work-phone", action="append", help="a work phone number")
        sub.add_argument("--email", action="append", help="an email address (repeatable)")
        sub.add_argument("--work-email", action="append", help="a work email address")
        sub.add_argument("--year", help="year group")
        sub.add_argument("--reg", help="registration group")
        sub.add_argument("--clear", action="append", choices=FIELDS, help="empty this field")

    sub = command("init", _init, "create a book folder", json_option=False, at=False)
    sub.add_argument("--policy", help="a policy.toml to start from (default: a starter policy)")
    sub.add_argument("--store", choices=("sqlite", "json"), default="sqlite")

    command("policy", _policy, "show the book's policy")
    sub = command("journal", _journal, "list the runs merged into the book", at=False)
    sub.add_argument("--last", type=_count, metavar="N", help="only the last N runs")

    sub = command("sync", _sync, "read a source's export and merge it")
    sub.add_argument("source", help="the source's name in the policy (like mis)")
    sub.add_argument("path", help="the export: a file, folder or zip")
    sub.add_argument("--adapter", help="read it with this adapter (default: the policy's)")
    sub.add_argument(
        "--extracted-at", help="when the export was taken (default: its files' newest mtime)"
    )
    sub.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    sub.add_argument("--confirm", metavar="TOKEN", help="apply a held sync: the token it gave")

    sub = command("when", _when, "when a change made at a source shows in the book", at=False)
    sub.add_argument("source")
    sub.add_argument("--changed-at", help="when it was changed at the source (default now)")

    book_commands = commands.add_parser("address-book", help="edit the local address book")
    book_sub = book_commands.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = command("add", _address_book_add, "add a contact", parent=book_sub)
    sub.add_argument("--key", help="its key (default: a new random one)")
    data_options(sub)
    sub = command(
        "edit",
        _address_book_edit,
        "change fields (on a source's contact: a temporary override)",
        parent=book_sub,
    )
    sub.add_argument("contact")
    data_options(sub)
    sub = command("remove", _address_book_remove, "remove an address-book contact", parent=book_sub)
    sub.add_argument("contact")
    sub = command("import", _address_book_import, "import a vCard file", parent=book_sub)
    sub.add_argument("file")
    sub = command(
        "export",
        _address_book_export,
        "export the address book as vCard",
        json_option=False,
        parent=book_sub,
    )
    sub.add_argument("file")
    sub.add_argument(
        "--version", choices=("3.0", "4.0"), default="4.0", help="the vCard version to write"
    )
    sub.add_argument("--force", action="store_true", help="replace the file if it exists")

    override_commands = commands.add_parser("override", help="set or clear a temporary override")
    override_sub = override_commands.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = command("set", _override_set, "override a field a source covers", parent=override_sub)
    sub.add_argument("contact")
    sub.add_argument("field", choices=FIELDS)
    sub.add_argument("values", nargs="+", help="the value (several for phones or emails)")
    ends = sub.add_mutually_exclusive_group()
    ends.add_argument("--until", help="end at this time, or at the next sync if sooner")
    ends.add_argument(
        "--while-source-unchanged",
        action="store_true",
        help="keep across syncs while the source keeps the value it had",
    )
    sub = command("clear", _override_clear, "end an override now", parent=override_sub)
    sub.add_argument("contact")
    sub.add_argument("field", choices=FIELDS)

    sub = command("contacts", _contacts, "list contacts")
    sub.add_argument(
        "--search", help="only those whose id, name, phone number or email holds this text"
    )
    sub.add_argument("--role", choices=[r.value for r in Role])
    sub.add_argument("--departed", action="store_true", help="include departed contacts")
    sub = command("show", _show, "show a contact, with where each value came from")
    sub.add_argument("contact")
    sub = command("explain", _explain, "explain one field of a contact")
    sub.add_argument("contact")
    sub.add_argument("field", choices=FIELDS)

    group_commands = commands.add_parser("group", help="create, replace or remove a group")
    group_sub = group_commands.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = command("set", _group_set, "create or replace a group", parent=group_sub)
    sub.add_argument("name")
    sub.add_argument("--member", action="append", help="a contact id (repeatable)")
    rule_options(sub)
    sub = command("remove", _group_remove, "remove a group", parent=group_sub)
    sub.add_argument("name")
    command("groups", _groups, "list the groups")

    sub = command("link", _link, "say two records are one person")
    sub.add_argument("record")
    sub.add_argument("other")
    sub = command("unlink", _unlink, "take a record out of the contact it was linked into")
    sub.add_argument("record")

    for name, run, help in (
        ("recipients", _recipients, "who an audience reaches, at which address, and why"),
        ("send", _send, "plan a message; with --deliver, send it"),
    ):
        sub = command(name, run, help)
        sub.add_argument("audience", nargs="*", help="group names and contact ids (ids hold a ':')")
        sub.add_argument(
            "--channel",
            action="append",
            default=[],
            choices=[c.value for c in Channel],
            help="a channel, in order of preference (default email)",
        )
        rule_options(sub)
        sub.add_argument(
            "--each",
            action="store_true",
            help="send on every channel (default: the first that reaches)",
        )
        if name == "send":
            sub.add_argument("--id", required=True, help="the message's id, for ever")
            sub.add_argument("--subject", default="")
            text = sub.add_mutually_exclusive_group()
            text.add_argument("--body", help="the message's text")
            text.add_argument("--body-file", help="a UTF-8 file holding the message's text")
            sub.add_argument(
                "--deliver",
                action="store_true",
                help="really send (default: a dry run that shows the plan)",
            )

    sub = command("why", _why, "why a sent message went to that address", at=False)
    sub.add_argument("message", help="the message's id")
    sub.add_argument("contact")
    sub.add_argument("--channel", choices=[c.value for c in Channel])

    report_commands = commands.add_parser("report", help="the reports")
    report_sub = report_commands.add_subparsers(dest="report", metavar="REPORT", required=True)
    sub = command(
        "update-at-source",
        _report,
        "edits lost at a sync, and edits in force",
        parent=report_sub,
    )
    sub.add_argument("--since", help="only edits lost since this time")
    sub = command(
        "before-next-sync",
        _report,
        "which local edits the next sync would end",
        parent=report_sub,
    )
    sub.add_argument("source")
    sub.add_argument("--snapshot", help="the export the sync will read, for a dry run")
    sub.add_argument("--extracted-at")
    command(
        "two-feeds",
        _report,
        "people in an MIS feed and an import, not linked",
        at=False,  # the book as it is now: links have no past here
        parent=report_sub,
    )
    command(
        "data-quality",
        _report,
        "raw values, dangling links, unreachable guardians",
        parent=report_sub,
    )

    sub = command("export", _export, "export the book as CSV", json_option=False)
    sub.add_argument("file")
    sub.add_argument("--departed", action="store_true", help="include departed contacts")
    sub.add_argument("--force", action="store_true", help="replace the file if it exists")

    sub = command("erase", _erase, "erase a person for good (rule 13)")
    sub.add_argument("contact")
    sub.add_argument("--yes", action="store_true", help="yes, erase them")
    sub.add_argument(
        "--no-suppress",
        action="store_true",
        help="let a later sync bring them back (no suppression entry)",
    )

    sub = command(
        "demo", _demo, "run a week at a small school, on a new book", json_option=False, at=False
    )
    sub.add_argument("--folder", help="where to make the demo book (default: a new temp folder)")
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"{text!r} is not a count: give a whole number from 1"
        raise argparse.ArgumentTypeError(msg)
    return value


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "sourcetruth"


def _one_line(error: BaseException) -> str:
    """The error's message on one line; a rejected file's problems, one per line."""
    if isinstance(error, BaseExceptionGroup):
        return format_errors(error)
    text = " ".join(str(error).split()) or error.__class__.__name__
    if isinstance(error, OSError) and not isinstance(error, SourceTruthError):
        # A bare OSError reads "[Errno 2] No such file or directory: 'x'".
        where = error.filename if error.filename is not None else ""
        text = f"{error.strerror or text}{f': {where}' if where else ''}"
    return text


class _LogLine(logging.Formatter):
    """``sourcetruth: warning: ...``: a log record as one line, like every other message."""

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())
        return f"sourcetruth: {record.levelname.lower()}: {text}"


@contextlib.contextmanager
def _logging_to(err: TextIO, *, debug: bool) -> Iterator[None]:
    """The library's log lines: with --debug, as ``sourcetruth:`` lines; else none.

    What a command reports (a delivery that failed, a plugin that did not load)
    it says itself; the log's own lines would say it twice.
    """
    logger = logging.getLogger("sourcetruth")
    handler: logging.Handler = logging.NullHandler()
    if debug:
        handler = logging.StreamHandler(err)
        handler.setFormatter(_LogLine())
    level = logger.level
    logger.addHandler(handler)
    if debug:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run one command; return its exit status (see :data:`EXIT_CODES`)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        try:
            with contextlib.redirect_stdout(out):  # where --help prints
                args = _parser().parse_args(argv)
        except SystemExit as done:  # --help
            out.flush()
            return done.code if isinstance(done.code, int) else OK
    except _Exit as wrong:
        err.write(f"sourcetruth: {wrong.message}\n")
        return wrong.code
    except BrokenPipeError:  # `sourcetruth --help | head -1`
        _silence(out)
        return PIPE_CLOSED
    environ = os.environ if environ is None else environ
    args.book = args.book or environ.get("SOURCETRUTH_BOOK") or "."
    args.by = args.by or environ.get("SOURCETRUTH_USER") or _user()
    ctx = _Context(args, out, err, environ)
    try:
        with _logging_to(err, debug=args.debug):
            code: int = args.run(ctx)
            out.flush()  # a reader gone away shows here, not after main returns
        return code
    except BrokenPipeError:
        # The reader stopped reading ('| head -1'): nothing to say, and nowhere to say it.
        _silence(out)
        return PIPE_CLOSED
    except _Exit as done:
        if done.message:
            err.write(f"sourcetruth: {done.message}\n")
        return done.code
    except KeyboardInterrupt:
        if args.debug:
            raise
        err.write("sourcetruth: interrupted\n")
        return INTERRUPTED
    except Exception as error:
        if args.debug:
            raise
        code = _code(error)
        if code == FAILED and not isinstance(error, SourceTruthError):
            # A bug: say so in one line, unless asked for more.
            err.write(
                f"sourcetruth: unexpected {error.__class__.__name__}; run again with --debug "
                "to see where\n"
            )
        else:
            err.write(f"sourcetruth: {_one_line(error)}\n")
        return code
    finally:
        ctx.close()


def _silence(stream: TextIO) -> None:
    """Point a closed pipe's descriptor at the null device, so the exit flush stays quiet."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file: nothing will flush it at exit
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, descriptor)
    finally:
        os.close(null)


#: The exit status for each kind of error, most specific first: the first type an
#: error is an instance of decides (a SchemaVersionError is a SourceDataError, but
#: it says the book's file is newer than the program, so STORE).
ERROR_CODES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (SchemaVersionError, STORE),
    (AdapterError, STORE),
    (SourceDataError, DATA),
    (BaseExceptionGroup, DATA),
    (UsageError, USAGE),
    (OSError, STORE),
)


def _code(error: BaseException) -> int:
    """The exit status for an error; FAILED for one the program did not expect."""
    return next((code for kind, code in ERROR_CODES if isinstance(error, kind)), FAILED)
