"""A book folder: what the ``sourcetruth`` command works on.

One folder holds one school's book and what goes with it::

    policy.toml        the settings: sources, schedules, guard, transports
    book.sqlite        the store (or book.json, with ``init --store json``)
    suppression.key    the secret of erasure's keyed hashes (rule 13)
    deliveries.jsonl   the delivery log that makes sends resumable
    audit/             one audit record per message sent
    outbox/            messages "sent" on a channel with no transport set

The suppression key is made by ``init`` with owner-only permissions. Keeping
it in the folder is the simple default; set ``SOURCETRUTH_SUPPRESSION_KEY_FILE``
to keep it elsewhere, so that a copy of the folder without it cannot tell
whose records were erased. A key already at that place is used as it is (a
school may share one key across its books): :attr:`BookFolder.reused_key`
says so.

The files hold personal data: every folder the library makes is its
owner's only (``0700``), and the files the folder writes (the store, the
audit records, the delivery log, the outbox) are readable by their owner
only (``0600``). Every file the folder rewrites is replaced whole: a
temporary file beside it, flushed to disk, then renamed over it. What a
write killed mid-way leaves (that temporary, a copy of what it was writing)
is removed when the folder is next opened, and by an erasure, never while a
live writer is writing it. A link planted where the folder writes is never
written through: it is refused, or replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shlex
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import attrs

from sourcetruth._near import did_you_mean, nearest
from sourcetruth.adapters import registry
from sourcetruth.adapters._files import (
    fsync_folder,
    private_folder,
    read_in_place,
    refuse_links,
    sweep_temporaries,
    write_atomic,
)
from sourcetruth.adapters.sources.base import Reading, SourceAdapter
from sourcetruth.app.dispatch import SentMessage, plan_send, send_planned
from sourcetruth.app.sending import FileDeliveryLog
from sourcetruth.app.settings import (
    STARTER,
    Settings,
    check_adapters,
    inside,
    is_live,
    parse_settings,
    read_mapping,
)
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
from sourcetruth.protocols import Store, Transport
from sourcetruth.report import MergeResult, Report, combine
from sourcetruth.serialise import dumps, loads

__all__ = ["KEY_FILE_VARIABLE", "BookFolder", "combine_reports"]

_log = logging.getLogger(__name__)

#: The environment variable that may name the suppression key's file.
KEY_FILE_VARIABLE: Final = "SOURCETRUTH_SUPPRESSION_KEY_FILE"

_SETTINGS: Final = "policy.toml"
_KEY: Final = "suppression.key"
_STORES: Final = {"sqlite": "book.sqlite", "json": "book.json"}
#: A message id that can name its audit file as it is.
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


#: One report for changes committed together: :func:`sourcetruth.report.combine`.
combine_reports: Final = combine


class BookFolder:
    """One school's book on disk, with its settings, key, delivery log and audit."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self._environ = environ
        self._store: Store | None = None
        #: True when :meth:`create` found a suppression key at the key file and kept it.
        self.reused_key = False
        #: The audit files the last :meth:`erase` could not read, and so could not clean.
        self.unreadable_audits: tuple[Path, ...] = ()

    def __repr__(self) -> str:
        return f"BookFolder({os.fspath(self.path)!r})"

    # -- creating and opening ---------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        settings: str = STARTER,
        store: str = "sqlite",
        environ: Mapping[str, str] = os.environ,
    ) -> BookFolder:
        """Make a new book folder at *path* (which may exist, but hold no book).

        *settings* is the text of ``policy.toml``; it is checked before
        anything is written: its keys, the adapters it names and their
        options, and (where an adapter can say so without reading a file)
        that each source covers only fields its adapter reads. A mistake is a
        :class:`~sourcetruth.SourceDataError` naming ``policy.toml`` and the key.

        A folder that this makes is its owner's only. An existing suppression
        key at :data:`KEY_FILE_VARIABLE` is kept, and :attr:`reused_key` says so.
        """
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            msg = f"{folder} is a file, not a folder: choose another place for the book"
            raise UsageError(msg)
        if store not in _STORES:
            msg = f"the store is one of {', '.join(_STORES)}, not {store!r}"
            raise UsageError(msg)
        parsed = parse_settings(settings, file=_SETTINGS, base=folder)
        check_adapters(parsed, file=_SETTINGS)
        # lexists: a link at one of the names, even to nothing, is something there.
        if any(os.path.lexists(folder / name) for name in (_SETTINGS, *_STORES.values())):
            msg = f"{folder} already holds a book; open it, or choose another folder"
            raise UsageError(msg)
        _check_sources(parsed, file=_SETTINGS)
        if not folder.exists():
            private_folder(folder)  # 0700 whatever the umask, and each folder made above it
        book = cls(folder, environ)
        book.reused_key = _keep_or_make_key(book._key_file)
        _make_store_file(folder, store)
        book._open_store(store).close()
        # The settings file goes last, and whole: a folder holds a book once it is there.
        _replace(folder / _SETTINGS, settings)
        return book

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, environ: Mapping[str, str] = os.environ
    ) -> BookFolder:
        """Open the book folder at *path*; it must have been made by :meth:`create`."""
        folder = Path(path)
        if not (folder / _SETTINGS).is_file():
            raise UsageError(_not_a_book(folder))
        book = cls(folder, environ)
        book._sweep(book._own_folders(), wait=False)
        return book

    # -- settings and policy ----------------------------------------------------

    @cached_property
    def settings(self) -> Settings:
        file = self.path / _SETTINGS
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            msg = f"cannot read the settings: {error.__class__.__name__}"
            raise SourceDataError(msg, file=str(file)) from None
        parsed = parse_settings(text, file=str(file), base=self.path)
        # A file edited by hand since init is checked against the adapters as well.
        check_adapters(parsed, file=str(file))
        return parsed

    @property
    def _key_file(self) -> Path:
        named = self._environ.get(KEY_FILE_VARIABLE)
        return Path(named) if named else self.path / _KEY

    @cached_property
    def policy(self) -> Policy:
        """The settings' policy, with the suppression key read from its file."""
        try:
            key = self._key_file.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            msg = (
                f"cannot read the suppression key at {self._key_file}; restore it, or set "
                f"{KEY_FILE_VARIABLE} to where it is kept"
            )
            raise AdapterError(msg) from None
        if not key:
            msg = f"the suppression key file {self._key_file} is empty"
            raise AdapterError(msg)
        return attrs.evolve(self.settings.policy, suppression_key=key)

    @property
    def timezone(self) -> ZoneInfo:
        return self.settings.timezone

    # -- the store --------------------------------------------------------------

    def _open_store(self, kind: str | None = None) -> Store:
        if kind is None:
            found = [k for k, name in _STORES.items() if (self.path / name).exists()]
            if len(found) != 1:
                msg = f"{self.path} should hold exactly one of {', '.join(_STORES.values())}"
                raise AdapterError(msg)
            kind = found[0]
        factory = registry.get("store", kind)
        store: Store = factory(self.path / _STORES[kind])
        return store

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> BookFolder:
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

    def erase(
        self, contact_id: str, *, at: datetime, by: str, suppress: bool = True
    ) -> tuple[MergeResult, tuple[Path, ...]]:
        """Erase a person from the book and from what the folder kept of sends (rule 13).

        The store forgets them as :class:`~sourcetruth.Erase` says; the audit
        records lose them (see :func:`sourcetruth.audit.redact`), and a record
        of a message that was only to them (every delivery theirs, an
        audience of erased people only) is deleted whole, subject and body
        with it. The delivery log forgets the keys of their deliveries; every
        outbox (the folder's, and a folder a ``[transports.*]`` outbox names)
        loses the messages that went only to them and their name on shared
        ones. The sent records are cleaned first: should the commit then
        fail, running the erasure again completes it. Last, what writes killed
        mid-way left in the folder's own folders (copies of a book or an audit
        that may hold them) is removed, once any write in progress is done.

        Returns the result and the audit files that were rewritten or
        deleted. An audit file that cannot be read is skipped, not a reason
        to stop: it is logged as a warning and listed in
        :attr:`unreadable_audits`, since it may still hold the person.
        """
        change = Erase(contact_id, suppress=suppress)
        before, batch, combined = self._merge_all(change, at, by)
        contacts, records = erased_by(before, combined.book)
        cleaned, unreadable = self._redact_sent(contacts | records)
        self.unreadable_audits = unreadable
        self._commit(before, batch, combined, at, by)
        # A copy a killed write left may hold them: wait for live writes, then remove them all.
        self._sweep([*self._own_folders(), *self._outbox_folders()], wait=True)
        return combined, cleaned

    def _own_folders(self) -> list[Path]:
        """The folder, ``audit/`` and each of ``outbox/``'s channel folders."""
        return [self.path, self.path / "audit", *self._own_outboxes()]

    def _own_outboxes(self) -> list[Path]:
        """The channel folders of the folder's own ``outbox/``."""
        own = self.path / "outbox"
        return sorted(p for p in own.iterdir() if p.is_dir()) if own.is_dir() else []

    @staticmethod
    def _sweep(folders: Iterable[Path], *, wait: bool) -> None:
        """Remove what writes killed mid-way left in *folders* (see ``sweep_temporaries``)."""
        for folder in dict.fromkeys(folders):
            sweep_temporaries(folder, wait=wait)

    def _redact_sent(self, gone: frozenset[str]) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
        """Take *gone* out of the sent records: the cleaned and the unreadable audit files."""
        cleaning: list[tuple[Path, AuditRecord | None, tuple[str, ...], tuple[str, ...]]] = []
        unreadable: list[Path] = []
        for file in sorted((self.path / "audit").glob("*.json")):
            try:
                record = self._read_audit(file)
            except (SourceDataError, AdapterError) as error:
                _log.warning(
                    "the erasure could not read the audit record %s (%s); it may still hold "
                    "the person erased: repair it and erase again, or delete it",
                    file,
                    getattr(error, "reason", None) or error.__class__.__name__,
                )
                unreadable.append(file)
                continue
            if record is None:
                continue
            redacted, dropped, changed = redact(record, gone)
            if redacted == record and not _only_erased(record):
                continue
            kept = None if _only_erased(redacted) else redacted
            cleaning.append((file, kept, dropped, changed))
        # The delivery log first: until the audit files are rewritten, a second
        # run of the erasure finds the same keys in them again.
        self.delivery_log.forget(key for _, _, dropped, _ in cleaning for key in dropped)
        copies: dict[str, list[Path]] = {}
        for folder in self._outbox_folders():
            for copy in folder.glob("*.json"):
                copies.setdefault(copy.name, []).append(copy)
        for file, kept, dropped, changed in cleaning:
            for key in dropped:
                for copy in copies.get(f"{key}.json", []):
                    copy.unlink(missing_ok=True)
            for key in changed:
                for copy in copies.get(f"{key}.json", []):
                    _unname(copy)
            if kept is None:
                file.unlink(missing_ok=True)
                fsync_folder(file.parent)
            else:
                self._write_audit(file, kept)
        return tuple(file for file, *_ in cleaning), tuple(unreadable)

    def _outbox_folders(self) -> list[Path]:
        """Every folder an outbox of this book may have written to."""
        folders: set[Path] = set(self._own_outboxes())
        for configured in self.settings.transports.values():
            if configured.adapter != "outbox":
                continue
            named: object = configured.options.get("folder")
            variable = configured.options.get("folder_env")
            if named is None and isinstance(variable, str):
                named = self._environ.get(variable)
            if isinstance(named, str) and named:
                folders.add(self.path / named)
        return sorted(f for f in folders if f.is_dir())

    def _commit(
        self, before: Book, batch: list[Change], combined: MergeResult, at: datetime, by: str
    ) -> None:
        run = run_of(before, batch, combined.report, at=at, by=by)
        self.store.commit(before, combined, run)

    # -- sources ----------------------------------------------------------------

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
        section = f"[sources.{source}] of {_SETTINGS}"
        name = adapter or (how.adapter if how else None)
        if name is None:
            msg = f"say which adapter reads {source!r}: --adapter, or 'adapter' in {section}"
            raise UsageError(msg)
        factory = _adapter("source", name, section)
        file = str(self.path / _SETTINGS)
        options: dict[str, Any] = how.resolved(self._environ, file=file) if how else {}
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
        # A covered field the adapter cannot read would arrive empty on every
        # sync, and a covered empty value wins: the sync would blank it for all.
        unread = sorted(policy.source(source).covers - made.covers)
        if unread:
            msg = (
                f"{section} covers {', '.join(unread)}, which the {name!r} adapter cannot "
                f"read; a sync would empty it for everyone. Cover only what it reads: "
                f"covers = {sorted(made.covers)!r}"
            )
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

    # -- sending ----------------------------------------------------------------

    def transports(self, channels: Iterable[Channel]) -> dict[Channel, Transport]:
        """A transport for each of *channels*: as configured, or the folder's outbox."""
        made: dict[Channel, Transport] = {}
        for channel in channels:
            configured = self.settings.transports.get(channel)
            outbox = self.path / "outbox" / channel.value
            if configured is None:
                refuse_links(outbox, up_to=self.path)  # checked before anything is sent
                made[channel] = _outbox(registry.get("transport", "outbox"), channel, outbox)
                continue
            section = f"[transports.{channel.value}] of {_SETTINGS}"
            factory = _adapter("transport", configured.adapter, section)
            file = str(self.path / _SETTINGS)
            options = configured.resolved(self._environ, file=file)
            try:
                if configured.adapter == "outbox":
                    # The outbox is told its channel; its folder is the book's unless set,
                    # and inside the book folder if set (by a variable too).
                    named = options.pop("folder", None)
                    where = f"transports.{channel.value}.folder"
                    folder = (
                        outbox
                        if named is None
                        else inside(named, self.path, where=where, file=file)
                    )
                    refuse_links(folder, up_to=self.path)
                    transport: Transport = _outbox(factory, channel, folder, **options)
                else:
                    transport = factory(**options)
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

    @property
    def delivery_log(self) -> FileDeliveryLog:
        return FileDeliveryLog(self.path / "deliveries.jsonl")

    def _audit_file(self, message_id: str) -> Path:
        """The audit file of *message_id*: one file per id, always inside ``audit/``.

        A plain id (letters, digits, ``.``, ``_``, ``-``) names its file as it
        is; any other id gets a readable part and a hash of the whole id after
        a ``~``, which no plain id holds, so two ids never share a file.
        """
        if _PLAIN_ID.fullmatch(message_id):
            name = message_id
        else:
            readable = re.sub(r"[^A-Za-z0-9._-]", "_", message_id).lstrip(".")[:40]
            digest = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()
            name = f"{readable}~{digest[:24]}"
        return self.path / "audit" / f"{name}.json"

    def _read_audit(self, file: Path) -> AuditRecord | None:
        try:
            # surrogatepass: an id from a command line that was not UTF-8 (see save_audit).
            text = read_in_place(file).decode("utf-8", errors="surrogatepass")
        except FileNotFoundError:
            return None
        except AdapterError:  # a link in its place: never followed
            raise
        except (OSError, UnicodeDecodeError) as error:
            msg = f"cannot read the audit record {file}: {error.__class__.__name__}"
            raise AdapterError(msg) from None
        try:
            return loads(text, AuditRecord)
        except SourceDataError as error:
            kind = SchemaVersionError if isinstance(error, SchemaVersionError) else SourceDataError
            msg = f"the audit record cannot be read: {error.reason}"
            raise kind(msg, file=str(file)) from None

    def save_audit(self, record: AuditRecord) -> Path:
        """Keep *record* in ``audit/``, replacing an earlier record of the same message."""
        file = self._audit_file(record.message.id)
        private_folder(file.parent)
        kept = self._read_audit(file)
        if kept is not None and kept.message.id != record.message.id:
            # Only a filesystem that ignores case can bring two ids to one file.
            msg = (
                f"{file} holds the audit of another message ({kept.message.id!r}); "
                "send this one with another id"
            )
            raise UsageError(msg)
        self._write_audit(file, record)
        return file

    @staticmethod
    def _write_audit(file: Path, record: AuditRecord) -> None:
        # A message id read from a command line that was not UTF-8 holds lone surrogates:
        # they are kept, rather than losing the record of a send that already happened.
        _replace(file, dumps(record), errors="surrogatepass")

    def audit(self, message_id: str) -> AuditRecord:
        """The audit record of the message sent with *message_id*."""
        record = self._read_audit(self._audit_file(message_id))
        if record is None or record.message.id != message_id:
            msg = f"no message {message_id!r} was sent from this book"
            raise UsageError(msg)
        return record

    def send_message(
        self, message: Message, *, sent_at: datetime, at: datetime | None = None
    ) -> SentMessage:
        """Send *message* from this folder, or resume it where an earlier send stopped.

        Planned with :func:`~sourcetruth.app.dispatch.plan_send` (at *at*, or
        *sent_at*; a message sent before, at the time it was first planned)
        and sent with :func:`~sourcetruth.app.dispatch.send_planned`, its audit
        record kept before anything is handed over.
        """
        policy = self.settings.policy  # planning needs no suppression key
        planned = plan_send(self, self.load(), message, policy=policy, now=sent_at, at=at)
        return send_planned(self, planned, sent_at=sent_at)


def _keep_or_make_key(key_file: Path) -> bool:
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


def _make_store_file(folder: Path, store: str) -> None:
    """The empty file of a new *store* in *folder*: owner-only before anything is in it.

    sqlite's own files beside it (a journal, a write-ahead log) take its permissions.
    """
    store_file = folder / _STORES[store]
    try:
        fd = os.open(store_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        msg = f"{folder} already holds a book; open it, or choose another folder"
        raise UsageError(msg) from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        if store == "json":
            from sourcetruth.adapters.stores.jsonstore import EMPTY

            out.write(EMPTY)
    os.chmod(store_file, 0o600)  # whatever the umask


def _adapter(kind: registry.AdapterKind, name: str, section: str) -> Any:
    """The factory of the *kind* adapter called *name*, which *section* asks for."""
    try:
        return registry.get(kind, name)
    except UnknownAdapterError as error:
        msg = f"{section}: {error}"
        raise UnknownAdapterError(msg) from None


def _check_sources(settings: Settings, *, file: str) -> None:
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
    """Check one source for :func:`_check_sources`."""
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
    # A covered field the adapter cannot read would arrive empty on every
    # sync, and a covered empty value wins: the sync would blank it for all.
    unread = sorted(source.covers - covers)
    if unread:
        msg = (
            f"names {', '.join(unread)}, which the {how.adapter!r} adapter cannot read; "
            f"a sync would empty it for everyone. Cover only what it reads: "
            f"covers = {sorted(covers)!r}"
        )
        raise SourceDataError(msg, file=file, field=f"sources.{name}.covers")


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


def _unname(copy: Path) -> None:
    """Take the name out of an outbox copy of a delivery shared with an erased person."""
    try:
        envelope = json.loads(copy.read_text(encoding="utf-8"))
        if not isinstance(envelope, dict):
            raise ValueError(copy.name)
    except (OSError, ValueError):
        # Unreadable, it may still name them: an outbox copy is only a copy.
        copy.unlink(missing_ok=True)
        return
    envelope["name"] = ""
    _replace(copy, json.dumps(envelope, indent=2, sort_keys=True))


def _outbox(factory: Any, channel: Channel, folder: Path, **options: Any) -> Transport:
    """An outbox for *channel* writing to *folder* (its folders 0700, its copies 0600)."""
    made: Transport = factory(channel, folder, **options)
    return made


def _replace(file: Path, text: str, *, errors: str = "strict") -> None:
    """Write *file* whole or not at all, readable by its owner only."""
    write_atomic(file, text.encode("utf-8", errors))


#: How many entries of a missing book folder's parent are looked at for a near name.
_SIBLINGS_LOOKED_AT: Final = 10_000


def _not_a_book(folder: Path) -> str:
    """Why *folder* cannot be opened as a book, and what to do.

    A folder that does not exist is most likely a typo: ``init`` there would
    make a second, empty book, so the nearest book folder beside it is offered
    instead. Only a folder that exists but holds no book is told how to make one.
    """
    if folder.is_dir():
        return (
            f"{folder} holds no book (no {_SETTINGS}); to make one there, "
            f"run 'sourcetruth --book {shlex.quote(str(folder))} init'"
        )
    if os.path.lexists(folder):
        return f"{folder} is a file, not a book folder"
    near = [
        str(folder.parent / name)
        for name in nearest(folder.name, _sibling_names(folder.parent))
        if (folder.parent / name / _SETTINGS).is_file()
    ]
    hint = did_you_mean(near) or " (check --book, or $SOURCETRUTH_BOOK)"
    return f"the book folder {folder} does not exist{hint}"


def _sibling_names(parent: Path) -> list[str]:
    """The names of the folders in *parent* (a bounded number of them; none if unreadable)."""
    names: list[str] = []
    try:
        with os.scandir(parent if str(parent) else ".") as entries:
            for entry in entries:
                if len(names) >= _SIBLINGS_LOOKED_AT:
                    break
                if entry.is_dir():
                    names.append(entry.name)
    except OSError:
        return []
    return names
