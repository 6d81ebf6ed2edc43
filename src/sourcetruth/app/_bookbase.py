"""What every kind of book shares, wherever it keeps its things: a folder, or a database.

A book is its settings (the text of a ``policy.toml``), a suppression key, a
store, a delivery log, one audit record per message sent and an outbox for
the channels with no transport. :class:`BookBase` does everything with them
that is not about where they are kept: the policy, merging and committing,
erasure's cleaning of what was sent, reading sources, choosing transports
and sending. A subclass says where each thing is kept
(:class:`~sourcetruth.app.bookfolder.BookFolder`,
:class:`~sourcetruth.app.databasebook.DatabaseBook`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo

import attrs

from sourcetruth.adapters import registry
from sourcetruth.adapters.sources.base import Reading, SourceAdapter
from sourcetruth.app.dispatch import SentMessage, plan_send, send_planned
from sourcetruth.app.settings import Settings, check_adapters, is_live, parse_settings, read_mapping
from sourcetruth.audit import ERASED, AuditRecord, redact
from sourcetruth.changes import Erase
from sourcetruth.exceptions import (
    AdapterError,
    SchemaVersionError,
    SourceDataError,
    UnknownAdapterError,
    UsageError,
)
from sourcetruth.journal import Run, erased_by, run_of
from sourcetruth.merge import Change, merge
from sourcetruth.messages import Message
from sourcetruth.model import Book, Channel
from sourcetruth.policy import Policy
from sourcetruth.protocols import DeliveryLog, Store, Transport
from sourcetruth.report import MergeResult, Report, combine
from sourcetruth.serialise import loads

__all__ = [
    "KEY_FILE_VARIABLE",
    "SETTINGS_NAME",
    "BookBase",
    "ErasableDeliveryLog",
    "adapter_factory",
    "check_sources",
    "keep_or_make_key",
    "parse_audit",
    "read_key_file",
    "unnamed",
]

_log = logging.getLogger(__name__)

#: The environment variable that may name the suppression key's file.
KEY_FILE_VARIABLE: Final = "SOURCETRUTH_SUPPRESSION_KEY_FILE"
#: What a book's settings are called, in messages: the file a folder keeps them in.
SETTINGS_NAME: Final = "policy.toml"

#: Where a book keeps one audit record: a file, or the message id of a row.
Place = TypeVar("Place")


class ErasableDeliveryLog(DeliveryLog, Protocol):
    """A delivery log that can forget keys, as an erasure needs."""

    def forget(self, keys: Iterable[str]) -> int:
        """Take every entry about *keys* out of the log; return how many went."""
        ...


def parse_audit(text: str, where: str) -> AuditRecord:
    """The audit record *text* holds, or a typed error naming *where* it is kept."""
    try:
        return loads(text, AuditRecord)
    except SourceDataError as error:
        kind = SchemaVersionError if isinstance(error, SchemaVersionError) else SourceDataError
        msg = f"the audit record cannot be read: {error.reason}"
        raise kind(msg, file=where) from None


def unnamed(text: str) -> dict[str, Any] | None:
    """An outbox copy's envelope with its name taken out; None if it cannot be read.

    Unreadable, a copy may still name the erased person: the caller deletes it,
    as an outbox copy is only a copy.
    """
    try:
        envelope = json.loads(text)
    except ValueError:
        return None
    if not isinstance(envelope, dict):
        return None
    envelope["name"] = ""
    return envelope


def read_key_file(key_file: Path) -> str:
    """The suppression key in *key_file*: an :class:`AdapterError` if unreadable or empty."""
    try:
        key = key_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        msg = (
            f"cannot read the suppression key at {key_file}; restore it, or set "
            f"{KEY_FILE_VARIABLE} to where it is kept"
        )
        raise AdapterError(msg) from None
    if not key:
        msg = f"the suppression key file {key_file} is empty"
        raise AdapterError(msg)
    return key


class BookBase(ABC, Generic[Place]):
    """One school's book: settings, key, store, delivery log, audit records and outbox."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._store: Store | None = None
        #: True when ``create`` found a suppression key at the key file and kept it.
        self.reused_key = False
        #: The audit records the last :meth:`erase` could not read, and so could not clean.
        self.unreadable_audits: tuple[Place, ...] = ()

    # -- where things are kept: each kind of book says -------------------------------

    @property
    @abstractmethod
    def where(self) -> str:
        """The book as a person names it (``--book``): a folder, or a URL with no password."""

    @property
    @abstractmethod
    def _settings_file(self) -> str:
        """Where the settings are kept, as errors name them."""

    @property
    @abstractmethod
    def _settings_base(self) -> Path | None:
        """The folder relative paths of the settings start from (None: as written)."""

    @abstractmethod
    def _settings_text(self) -> str:
        """The text of the settings."""

    @abstractmethod
    def _suppression_key(self) -> str:
        """The secret of erasure's keyed hashes."""

    @abstractmethod
    def _open_store(self) -> Store:
        """The book's store, opened."""

    @property
    @abstractmethod
    def delivery_log(self) -> ErasableDeliveryLog:
        """The log that makes sends resumable."""

    @abstractmethod
    def _outbox(self, channel: Channel, options: dict[str, Any] | None) -> Transport:
        """The book's outbox for *channel*: *options* of an outbox the settings name, or None."""

    @abstractmethod
    def _audit_places(self) -> Iterable[Place]:
        """Every audit record kept (where each is)."""

    @abstractmethod
    def _audit_place(self, message_id: str) -> Place:
        """Where the audit record of *message_id* is kept."""

    @abstractmethod
    def _read_audit(self, place: Place) -> AuditRecord | None:
        """The audit record at *place*; None if there is none."""

    @abstractmethod
    def _write_audit(self, place: Place, record: AuditRecord) -> None:
        """Keep *record* at *place*, replacing what was there."""

    @abstractmethod
    def _delete_audit(self, place: Place) -> None:
        """Delete the audit record at *place*."""

    @abstractmethod
    def save_audit(self, record: AuditRecord) -> Path | str:
        """Keep *record*, replacing an earlier record of the same message: where it is."""

    @abstractmethod
    def _clean_outboxes(self, dropped: Collection[str], changed: Collection[str]) -> None:
        """Delete the outbox copies of *dropped* keys; take the name out of *changed* ones."""

    @abstractmethod
    def sent_ids(self, limit: int) -> list[str]:
        """Ids of messages sent from the book (at most *limit*), for "did you mean"."""

    def _after_erase(self) -> None:
        """What an erasure does last, after the commit (a folder: remove what writes left)."""

    # -- settings and policy ------------------------------------------------------

    @cached_property
    def settings(self) -> Settings:
        file = self._settings_file
        parsed = parse_settings(self._settings_text(), file=file, base=self._settings_base)
        # Settings edited since init are checked against the adapters as well.
        check_adapters(parsed, file=file)
        return parsed

    @cached_property
    def policy(self) -> Policy:
        """The settings' policy, with the suppression key."""
        return attrs.evolve(self.settings.policy, suppression_key=self._suppression_key())

    @property
    def timezone(self) -> ZoneInfo:
        return self.settings.timezone

    # -- the store ----------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def load(self) -> Book:
        return self.store.load()

    @property
    def keeps_view(self) -> bool:
        """Whether the store keeps the book's current view (a loaded book may have it)."""
        return bool(getattr(self.store, "keeps_view", False))

    def journal(self) -> tuple[Run, ...]:
        return self.store.journal()

    def _merge_all(
        self, changes: Change | Iterable[Change], at: datetime, by: str
    ) -> tuple[Book, list[Change], MergeResult]:
        batch: list[Change] = [changes] if not isinstance(changes, Iterable) else list(changes)
        if not batch:
            msg = "nothing to apply"
            raise UsageError(msg)
        before = self.load()
        book = before
        reports: list[Report] = []
        for change in batch:
            result = merge(book, change, policy=self.policy, at=at, by=by)
            book = result.book
            reports.append(result.report)
        return before, batch, MergeResult(book, combine(reports))

    def dry_run(self, changes: Change | Iterable[Change], *, at: datetime, by: str) -> MergeResult:
        """What :meth:`apply` of *changes* would do, with nothing written."""
        return self._merge_all(changes, at, by)[2]

    def apply(self, changes: Change | Iterable[Change], *, at: datetime, by: str) -> MergeResult:
        """Merge one change, or several one after another, and commit them as one run.

        Several changes (the entries of one vCard file) are all applied or
        none: the first that fails leaves the store untouched.
        """
        before, batch, combined = self._merge_all(changes, at, by)
        self._commit(before, batch, combined, at, by)
        return combined

    def _commit(
        self, before: Book, batch: list[Change], combined: MergeResult, at: datetime, by: str
    ) -> None:
        run = run_of(before, batch, combined.report, at=at, by=by)
        self.store.commit(before, combined, run)

    # -- erasure ------------------------------------------------------------------

    def erase(
        self, contact_id: str, *, at: datetime, by: str, suppress: bool = True
    ) -> tuple[MergeResult, tuple[Place, ...]]:
        """Erase a person from the book and from what the book kept of sends (rule 13).

        The store forgets them as :class:`~sourcetruth.Erase` says; the audit
        records lose them (see :func:`sourcetruth.audit.redact`), and a record
        of a message that was only to them (every delivery theirs, an
        audience of erased people only) is deleted whole, subject and body
        with it. The delivery log forgets the keys of their deliveries; every
        outbox loses the messages that went only to them and their name on
        shared ones. The sent records are cleaned first: should the commit
        then fail, running the erasure again completes it.

        Returns the result and the audit records that were rewritten or
        deleted. One that cannot be read is skipped, not a reason to stop: it
        is logged as a warning and listed in :attr:`unreadable_audits`, since
        it may still hold the person.
        """
        change = Erase(contact_id, suppress=suppress)
        before, batch, combined = self._merge_all(change, at, by)
        contacts, records = erased_by(before, combined.book)
        cleaned, unreadable = self._redact_sent(contacts | records)
        self.unreadable_audits = unreadable
        self._commit(before, batch, combined, at, by)
        self._after_erase()
        return combined, cleaned

    def _redact_sent(self, gone: frozenset[str]) -> tuple[tuple[Place, ...], tuple[Place, ...]]:
        """Take *gone* out of the sent records: the cleaned and the unreadable audit records."""
        cleaning: list[tuple[Place, AuditRecord | None]] = []
        dropped: set[str] = set()
        changed: set[str] = set()
        unreadable: list[Place] = []
        for place in self._audit_places():
            try:
                record = self._read_audit(place)
            except (SourceDataError, AdapterError) as error:
                _log.warning(
                    "the erasure could not read the audit record %s (%s); it may still hold "
                    "the person erased: repair it and erase again, or delete it",
                    place,
                    getattr(error, "reason", None) or error.__class__.__name__,
                )
                unreadable.append(place)
                continue
            if record is None:
                continue
            redacted, its_dropped, its_changed = redact(record, gone)
            if redacted == record and not _only_erased(record):
                continue
            cleaning.append((place, None if _only_erased(redacted) else redacted))
            dropped.update(its_dropped)
            changed.update(its_changed)
        # The delivery log first: until the audit records are rewritten, a second
        # run of the erasure finds the same keys in them again.
        self.delivery_log.forget(dropped)
        self._clean_outboxes(dropped, changed - dropped)
        for place, kept in cleaning:
            if kept is None:
                self._delete_audit(place)
            else:
                self._write_audit(place, kept)
        return tuple(place for place, _ in cleaning), tuple(unreadable)

    # -- sources ------------------------------------------------------------------

    def source_adapter(
        self, source: str, path: str | os.PathLike[str] | None, *, adapter: str | None = None
    ) -> SourceAdapter:
        """The adapter that reads *path* for *source*, as the settings describe it.

        *adapter* overrides the adapter the settings name; the options and
        mapping of ``[sources.SOURCE]`` are given to it all the same, each
        ``NAME_env`` option read from the environment. A live source (a
        OneRoster REST service) reads from the URL its options give: its
        *path* is None.
        """
        policy = self.settings.policy  # reading a file needs no suppression key
        kind = policy.source(source).kind
        how = self.settings.sources.get(source)
        section = f"[sources.{source}] of {SETTINGS_NAME}"
        name = adapter or (how.adapter if how else None)
        if name is None:
            msg = f"say which adapter reads {source!r}: --adapter, or 'adapter' in {section}"
            raise UsageError(msg)
        factory = adapter_factory("source", name, section)
        options: dict[str, Any] = (
            how.resolved(self._environ, file=self._settings_file) if how else {}
        )
        live = is_live(factory)
        if live and path is not None:
            msg = f"the {name!r} adapter of {section} reads its service's URL, not a path"
            raise UsageError(msg)
        if not live and path is None:
            msg = f"the {name!r} adapter of {section} reads an export: give its path"
            raise UsageError(msg)
        if how is not None and how.mapping is not None:
            options["mapping"] = read_mapping(how.mapping, named_by=f"sources.{source}.mapping")
            options["kind"] = kind
        elif name == "csv":
            msg = f"reading {source!r} as CSV needs 'mapping' in {section}"
            raise UsageError(msg)
        try:
            made: SourceAdapter = (
                factory(source=source, **options)
                if live
                else factory(path, source=source, **options)
            )
        except (TypeError, UsageError) as error:
            msg = f"the options of {section} do not suit the {name!r} adapter: {error}"
            raise UsageError(msg) from None
        unread = _unread_cover(policy.source(source).covers, made.covers, name)
        if unread:
            msg = f"{section} covers {unread}"
            raise UsageError(msg)
        return made

    def read_source(
        self,
        source: str,
        path: str | os.PathLike[str] | None,
        *,
        extracted_at: datetime,
        adapter: str | None = None,
    ) -> Reading:
        return self.source_adapter(source, path, adapter=adapter).read(extracted_at=extracted_at)

    # -- sending ------------------------------------------------------------------

    def transports(self, channels: Iterable[Channel]) -> dict[Channel, Transport]:
        """A transport for each of *channels*: as configured, or the book's outbox."""
        made: dict[Channel, Transport] = {}
        for channel in channels:
            configured = self.settings.transports.get(channel)
            if configured is None:
                made[channel] = self._outbox(channel, None)
                continue
            section = f"[transports.{channel.value}] of {SETTINGS_NAME}"
            factory = adapter_factory("transport", configured.adapter, section)
            options = configured.resolved(self._environ, file=self._settings_file)
            try:
                transport: Transport = (
                    self._outbox(channel, options)
                    if configured.adapter == "outbox"
                    else factory(**options)
                )
            except (TypeError, UsageError) as error:
                msg = (
                    f"the options of {section} do not suit the "
                    f"{configured.adapter!r} transport: {error}"
                )
                raise UsageError(msg) from None
            if transport.channel is not channel:
                msg = (
                    f"the {configured.adapter!r} transport of {section} delivers "
                    f"{transport.channel.value}, not {channel.value}"
                )
                raise UsageError(msg)
            made[channel] = transport
        return made

    def audit(self, message_id: str) -> AuditRecord:
        """The audit record of the message sent with *message_id*."""
        record = self._read_audit(self._audit_place(message_id))
        if record is None or record.message.id != message_id:
            msg = f"no message {message_id!r} was sent from this book"
            raise UsageError(msg)
        return record

    def send_message(
        self, message: Message, *, sent_at: datetime, at: datetime | None = None
    ) -> SentMessage:
        """Send *message* from this book, or resume it where an earlier send stopped.

        Planned with :func:`~sourcetruth.app.dispatch.plan_send` (at *at*, or
        *sent_at*; a message sent before, at the time it was first planned)
        and sent with :func:`~sourcetruth.app.dispatch.send_planned`, its audit
        record kept before anything is handed over.
        """
        policy = self.settings.policy  # planning needs no suppression key
        planned = plan_send(self, self.load(), message, policy=policy, now=sent_at, at=at)
        return send_planned(self, planned, sent_at=sent_at)


def adapter_factory(kind: registry.AdapterKind, name: str, section: str) -> Any:
    """The factory of the *kind* adapter called *name*, which *section* asks for."""
    try:
        return registry.get(kind, name)
    except UnknownAdapterError as error:
        msg = f"{section}: {error}"
        raise UnknownAdapterError(msg) from None


def _only_erased(record: AuditRecord) -> bool:
    """Whether *record* is of a message to erased people only, with nothing left of it."""
    message = record.message
    return (
        not record.outcomes
        and not record.unreachable
        and not record.fallbacks
        and not message.groups
        and not message.rules
        and message.contacts == (ERASED,)
    )


def keep_or_make_key(key_file: Path) -> bool:
    """Make a new suppression key at *key_file*, unless one is there: whether one was."""
    if key_file.exists():
        _log.info("using the existing suppression key at %s", key_file)
        return True
    try:
        # O_EXCL: never through a link, not even one to a file that is not there.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if key_file.exists():  # made meanwhile, by another init: a key there is used
            return True
        msg = (
            f"{key_file} is a link to a file that is not there: restore the suppression "
            "key it pointed at, or remove the link"
        )
        raise AdapterError(msg) from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
    return False


def check_sources(settings: Settings, *, file: str) -> None:
    """Build each source's adapter, reading no file, and check what it covers.

    Each adapter is made for an empty temporary folder, which it is never
    asked to read. An adapter that wants its files while it is made, or a
    CSV source whose mapping is not there yet, is left for the first sync to
    check.
    """
    with tempfile.TemporaryDirectory(prefix="sourcetruth-check-") as empty:
        for name in settings.sources:
            _check_source(settings, name, Path(empty), file=file)


def _check_source(settings: Settings, name: str, empty: Path, *, file: str) -> None:
    """Check one source for :func:`check_sources`."""
    how = settings.sources[name]
    if how.adapter is None:
        return
    source = settings.policy.source(name)
    options: dict[str, Any] = dict(how.options)
    if how.mapping is not None:
        if not how.mapping.is_file():
            return  # `init` says to put it there before the first sync
        options["mapping"] = read_mapping(how.mapping, named_by=f"sources.{name}.mapping")
        options["kind"] = source.kind
    elif how.adapter == "csv":
        return
    factory = registry.get("source", how.adapter)
    where = f"sources.{name}.options"
    live = is_live(factory)
    if live:
        # A secret's variable may be set only where syncs run: the check never reads it.
        for key in [k for k in options if k.endswith("_env")]:
            options[key.removesuffix("_env")] = f"<{options.pop(key)}>"
    try:
        made = factory(source=name, **options) if live else factory(empty, source=name, **options)
        covers = frozenset(made.covers)
    except UsageError as error:
        msg = f"the options do not suit the {how.adapter!r} adapter: {error}"
        raise SourceDataError(msg, file=file, field=where) from None
    except (TypeError, ValueError, AttributeError):
        msg = (
            f"an option of the {how.adapter!r} adapter has a value of a kind it cannot "
            "take (text for a number, say): check the values of the options"
        )
        raise SourceDataError(msg, file=file, field=where) from None
    except Exception:  # an adapter that reads its files as it is made
        return
    unread = _unread_cover(source.covers, covers, how.adapter)
    if unread:
        msg = f"names {unread}"
        raise SourceDataError(msg, file=file, field=f"sources.{name}.covers")


def _unread_cover(covers: Collection[str], reads: Collection[str], adapter: str) -> str:
    """What a source covers that its *adapter* cannot read, and why that is refused; or "".

    A covered field the adapter cannot read would arrive empty on every sync,
    and a covered empty value wins: the sync would blank it for everyone.
    """
    unread = sorted(set(covers) - set(reads))
    if not unread:
        return ""
    return (
        f"{', '.join(unread)}, which the {adapter!r} adapter cannot read; a sync would "
        f"empty it for everyone. Cover only what it reads: covers = {sorted(reads)!r}"
    )
