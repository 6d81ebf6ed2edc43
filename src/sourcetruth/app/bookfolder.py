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
import shlex
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

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
from sourcetruth.app._bookbase import KEY_FILE_VARIABLE as _KEY_FILE_VARIABLE
from sourcetruth.app._bookbase import (
    BookBase,
    check_sources,
    keep_or_make_key,
    parse_audit,
    read_key_file,
    unnamed,
)
from sourcetruth.app.sending import FileDeliveryLog
from sourcetruth.app.settings import (
    STARTER,
    check_adapters,
    inside,
    parse_settings,
)
from sourcetruth.audit import AuditRecord
from sourcetruth.exceptions import (
    AdapterError,
    SourceDataError,
    UsageError,
)
from sourcetruth.model import Channel
from sourcetruth.protocols import Store, Transport
from sourcetruth.report import combine
from sourcetruth.serialise import dumps

__all__ = ["KEY_FILE_VARIABLE", "BookFolder", "combine_reports"]

_log = logging.getLogger(__name__)

#: The environment variable that may name the suppression key's file.
KEY_FILE_VARIABLE: Final = _KEY_FILE_VARIABLE

_SETTINGS: Final = "policy.toml"
_KEY: Final = "suppression.key"
_STORES: Final = {"sqlite": "book.sqlite", "json": "book.json"}
#: A message id that can name its audit file as it is.
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


#: One report for changes committed together: :func:`sourcetruth.report.combine`.
combine_reports: Final = combine


class BookFolder(BookBase[Path]):
    """One school's book on disk, with its settings, key, delivery log and audit."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        super().__init__(environ)
        self.path = path

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
        check_sources(parsed, file=_SETTINGS)
        if not folder.exists():
            private_folder(folder)  # 0700 whatever the umask, and each folder made above it
        book = cls(folder, environ)
        book.reused_key = keep_or_make_key(book._key_file)
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

    # -- where things are kept ---------------------------------------------------

    @property
    def where(self) -> str:
        return os.fspath(self.path)

    @property
    def _settings_file(self) -> str:
        return str(self.path / _SETTINGS)

    @property
    def _settings_base(self) -> Path:
        return self.path

    def _settings_text(self) -> str:
        try:
            return (self.path / _SETTINGS).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            msg = f"cannot read the settings: {error.__class__.__name__}"
            raise SourceDataError(msg, file=self._settings_file) from None

    @property
    def _key_file(self) -> Path:
        named = self._environ.get(KEY_FILE_VARIABLE)
        return Path(named) if named else self.path / _KEY

    def _suppression_key(self) -> str:
        return read_key_file(self._key_file)

    # -- the store ----------------------------------------------------------------

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

    def __enter__(self) -> BookFolder:
        return self

    # -- erasure --------------------------------------------------------------------

    def _after_erase(self) -> None:
        # A copy a killed write left may hold them: wait for live writes, then remove them all.
        self._sweep([*self._own_folders(), *self._outbox_folders()], wait=True)

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

    def _audit_places(self) -> list[Path]:
        return sorted((self.path / "audit").glob("*.json"))

    def _delete_audit(self, place: Path) -> None:
        place.unlink(missing_ok=True)
        fsync_folder(place.parent)

    def _clean_outboxes(self, dropped: Collection[str], changed: Collection[str]) -> None:
        for folder in self._outbox_folders():
            for copy in folder.glob("*.json"):
                if copy.stem in dropped:
                    copy.unlink(missing_ok=True)
                elif copy.stem in changed:
                    _unname(copy)

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

    # -- sending ----------------------------------------------------------------

    def _outbox(self, channel: Channel, options: dict[str, Any] | None) -> Transport:
        # The outbox is told its channel; its folder is the book's unless set,
        # and inside the book folder if set (by a variable too).
        outbox = self.path / "outbox" / channel.value
        named = None if options is None else options.pop("folder", None)
        where = f"transports.{channel.value}.folder"
        folder = (
            outbox
            if named is None
            else inside(named, self.path, where=where, file=self._settings_file)
        )
        refuse_links(folder, up_to=self.path)  # checked before anything is sent
        return _outbox(registry.get("transport", "outbox"), channel, folder, **(options or {}))

    @property
    def delivery_log(self) -> FileDeliveryLog:
        return FileDeliveryLog(self.path / "deliveries.jsonl")

    def _audit_place(self, message_id: str) -> Path:
        return self._audit_file(message_id)

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
        return parse_audit(text, str(file))

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

    def _write_audit(self, file: Path, record: AuditRecord) -> None:
        # A message id read from a command line that was not UTF-8 holds lone surrogates:
        # they are kept, rather than losing the record of a send that already happened.
        _replace(file, dumps(record), errors="surrogatepass")

    def sent_ids(self, limit: int) -> list[str]:
        """The ids of messages sent whose audit file is named by the id itself."""
        ids: list[str] = []
        try:
            with os.scandir(self.path / "audit") as entries:
                for entry in entries:
                    if len(ids) >= limit:
                        break
                    stem, suffix = os.path.splitext(entry.name)
                    if suffix == ".json" and "~" not in stem:  # '~': a hashed id, not the id
                        ids.append(stem)
        except OSError:
            return []
        return ids


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


def _unname(copy: Path) -> None:
    """Take the name out of an outbox copy of a delivery shared with an erased person."""
    try:
        envelope = unnamed(copy.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        envelope = None
    if envelope is None:
        copy.unlink(missing_ok=True)
        return
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
