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
whose records were erased.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import attrs

from sourcetruth.adapters import registry
from sourcetruth.adapters.base import Reading, SourceAdapter
from sourcetruth.adapters.store import Run, Store, erased_by, input_hash
from sourcetruth.adapters.transport import Transport
from sourcetruth.audit import AuditRecord, redact
from sourcetruth.exceptions import AdapterError, SourceDataError, UsageError
from sourcetruth.merge import Change, MergeResult, Report, Status, merge
from sourcetruth.model import Book, Channel, Erase, utc
from sourcetruth.policy import Policy
from sourcetruth.sending import FileDeliveryLog
from sourcetruth.serialise import dumps, loads
from sourcetruth.settings import STARTER, Settings, parse_settings

__all__ = ["KEY_FILE_VARIABLE", "BookFolder", "combine_reports"]

#: The environment variable that may name the suppression key's file.
KEY_FILE_VARIABLE: Final = "SOURCETRUTH_SUPPRESSION_KEY_FILE"

_SETTINGS: Final = "policy.toml"
_KEY: Final = "suppression.key"
_STORES: Final = {"sqlite": "book.sqlite", "json": "book.json"}
#: A message id that can name its audit file as it is.
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def combine_reports(reports: Sequence[Report]) -> Report:
    """One report for changes merged one after another and committed together."""
    if not reports:
        msg = "nothing to combine"
        raise UsageError(msg)
    last = reports[-1]
    statuses = {r.status for r in reports}
    # Applied if any part was; else held if any part was held: a hold is never hidden.
    status = next(s for s in (Status.APPLIED, Status.HELD, Status.NO_CHANGE) if s in statuses)
    kinds = list(dict.fromkeys(r.change for r in reports))
    if len(reports) == 1:
        change = kinds[0]
    elif len(kinds) == 1:
        change = f"{len(reports)} x {kinds[0]}"
    else:
        change = f"{len(reports)} changes: {', '.join(kinds)}"

    def joined(name: str) -> tuple[Any, ...]:
        return tuple(item for r in reports for item in getattr(r, name))

    return attrs.evolve(
        last,
        status=status,
        change=change,
        held=next((r.held for r in reports if r.held is not None), None),
        created=joined("created"),
        changes=joined("changes"),
        departed=joined("departed"),
        returned=joined("returned"),
        erased=joined("erased"),
        overrides_set=joined("overrides_set"),
        overrides_ended=joined("overrides_ended"),
        overrides_kept=joined("overrides_kept"),
        unnormalised=joined("unnormalised"),
        duplicates=joined("duplicates"),
        suppressed=sum(r.suppressed for r in reports),
    )


class BookFolder:
    """One school's book on disk, with its settings, key, delivery log and audit."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self._environ = environ
        self._store: Store | None = None

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
        anything is written.
        """
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            msg = f"{folder} is a file, not a folder: choose another place for the book"
            raise UsageError(msg)
        if store not in _STORES:
            msg = f"the store is one of {', '.join(_STORES)}, not {store!r}"
            raise UsageError(msg)
        parse_settings(settings, file=_SETTINGS, base=folder)
        if any((folder / name).exists() for name in (_SETTINGS, *_STORES.values())):
            msg = f"{folder} already holds a book; open it, or choose another folder"
            raise UsageError(msg)
        folder.mkdir(parents=True, exist_ok=True)
        book = cls(folder, environ)
        key_file = book._key_file
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(secrets.token_hex(32) + "\n")
        # The settings file goes last: a folder holds a book once it is there.
        if store == "json":
            from sourcetruth.adapters.jsonstore import EMPTY

            (folder / _STORES[store]).write_text(EMPTY, encoding="utf-8")
        book._open_store(store).close()
        (folder / _SETTINGS).write_text(settings, encoding="utf-8")
        return book

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, environ: Mapping[str, str] = os.environ
    ) -> BookFolder:
        """Open the book folder at *path*; it must have been made by :meth:`create`."""
        folder = Path(path)
        if not (folder / _SETTINGS).is_file():
            msg = f"{folder} is not a book folder (no {_SETTINGS}): run 'sourcetruth init' first"
            raise UsageError(msg)
        return cls(folder, environ)

    # -- settings and policy ----------------------------------------------------

    @cached_property
    def settings(self) -> Settings:
        file = self.path / _SETTINGS
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            msg = f"cannot read the settings: {error.__class__.__name__}"
            raise SourceDataError(msg, file=str(file)) from None
        return parse_settings(text, file=str(file), base=self.path)

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
        return before, batch, MergeResult(book, combine_reports(reports))

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
        records lose them (see :func:`sourcetruth.audit.redact`), and the
        outbox loses the messages that went only to them and their name on
        shared ones. The sent records are cleaned first: should the commit then
        fail, running the erasure again completes it. Returns the result and
        the audit files that were rewritten.
        """
        change = Erase(contact_id, suppress=suppress)
        before, batch, combined = self._merge_all(change, at, by)
        contacts, records = erased_by(before, combined.book)
        rewritten = self._redact_sent(contacts | records)
        self._commit(before, batch, combined, at, by)
        return combined, rewritten

    def _redact_sent(self, gone: frozenset[str]) -> tuple[Path, ...]:
        rewritten: list[Path] = []
        for file in sorted((self.path / "audit").glob("*.json")):
            record = self._read_audit(file)
            if record is None:
                continue
            redacted, dropped, changed = redact(record, gone)
            if redacted == record:
                continue
            self._write_audit(file, redacted)
            rewritten.append(file)
            for key in dropped:
                for copy in (self.path / "outbox").glob(f"*/{glob.escape(key)}.json"):
                    copy.unlink()
            for key in changed:
                for copy in (self.path / "outbox").glob(f"*/{glob.escape(key)}.json"):
                    envelope = json.loads(copy.read_text(encoding="utf-8"))
                    envelope["name"] = ""
                    _replace(copy, json.dumps(envelope, indent=2, sort_keys=True))
        return tuple(rewritten)

    def _commit(
        self, before: Book, batch: list[Change], combined: MergeResult, at: datetime, by: str
    ) -> None:
        report = combined.report
        # An erasure's input names the person: the journal keeps no hash of it (rule 13).
        digest = "" if any(isinstance(c, Erase) for c in batch) else _hash(batch)
        run = Run(
            f"{digest[:16] or 'erase'}-{before.seq}",
            utc(at),
            by,
            digest,
            report.status.value,
            report,
        )
        self.store.commit(before, combined, run)

    # -- sources ----------------------------------------------------------------

    def source_adapter(
        self, source: str, path: str | os.PathLike[str], *, adapter: str | None = None
    ) -> SourceAdapter:
        """The adapter that reads *path* for *source*, as the settings describe it.

        *adapter* overrides the adapter the settings name; the options and
        mapping of ``[sources.SOURCE]`` are given to it all the same.
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
        options: dict[str, Any] = dict(how.options) if how else {}
        if how is not None and how.mapping is not None:
            from sourcetruth.adapters.tabular import CsvMapping

            options["mapping"] = CsvMapping.from_toml(how.mapping)
            options["kind"] = kind
        elif name == "csv":
            msg = f"reading {source!r} as CSV needs 'mapping' in {section}"
            raise UsageError(msg)
        try:
            made: SourceAdapter = factory(path, source=source, **options)
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
        path: str | os.PathLike[str],
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
                made[channel] = registry.get("transport", "outbox")(channel, outbox)
                continue
            section = f"[transports.{channel.value}] of {_SETTINGS}"
            factory = _adapter("transport", configured.adapter, section)
            options = configured.resolved(self._environ, file=str(self.path / _SETTINGS))
            try:
                if configured.adapter == "outbox":
                    # The outbox is told its channel; its folder is the book's unless set.
                    folder = self.path / options.pop("folder", outbox)
                    transport: Transport = factory(channel, folder, **options)
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
            text = file.read_text(encoding="utf-8", errors="surrogatepass")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            msg = f"cannot read the audit record {file}: {error.__class__.__name__}"
            raise AdapterError(msg) from None
        return loads(text, AuditRecord)

    def save_audit(self, record: AuditRecord) -> Path:
        """Keep *record* in ``audit/``, replacing an earlier record of the same message."""
        file = self._audit_file(record.message.id)
        kept = self._read_audit(file)
        if kept is not None and kept.message.id != record.message.id:
            # Only a filesystem that ignores case can bring two ids to one file.
            msg = (
                f"{file} holds the audit of another message ({kept.message.id!r}); "
                "send this one with another id"
            )
            raise UsageError(msg)
        file.parent.mkdir(exist_ok=True)
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


def _adapter(kind: registry.AdapterKind, name: str, section: str) -> Any:
    """The factory of the *kind* adapter called *name*, which *section* asks for."""
    try:
        return registry.get(kind, name)
    except LookupError as error:
        msg = f"{section}: {error}"
        raise UsageError(msg) from None


def _replace(file: Path, text: str, *, errors: str = "strict") -> None:
    """Write *file* whole or not at all: a temporary file beside it, then a rename."""
    temporary = file.with_name(f"{file.name}.tmp")
    temporary.write_text(text, encoding="utf-8", errors=errors)
    os.replace(temporary, file)


def _hash(batch: list[Change]) -> str:
    if len(batch) == 1:
        return input_hash(batch[0])
    return hashlib.sha256("".join(input_hash(c) for c in batch).encode()).hexdigest()
