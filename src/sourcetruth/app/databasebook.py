"""A book kept whole in a PostgreSQL database: what ``--book postgresql://...`` works on.

A provider keeps many schools in one database (see
:mod:`~sourcetruth.adapters.stores.postgres`); each school's book is named by
a URL, ``postgresql://HOST/DATABASE?book=SCHOOL``. Everything a book folder
keeps in files is kept in tables of the same ``sourcetruth`` schema, under
the same forced row-level security, so any machine with the URL (and the
password, from ``PGPASSWORD`` or a ``.pgpass`` file: never in the URL) can
run any command on the book::

    book_settings   the settings (a policy.toml's text) and the suppression key
    deliveries      the delivery log that makes sends resumable
    audits          one audit record per message sent
    outbox          messages "sent" on a channel with no transport set

The suppression key is made by :meth:`DatabaseBook.create`, in the database;
set ``SOURCETRUTH_SUPPRESSION_KEY_FILE`` to keep it in a file instead (one
made there if none is), so that a copy of the database without it cannot
tell whose records were erased. Paths in the settings (a CSV source's
mapping) are read as written, from where the command runs.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from sourcetruth.adapters.stores.postgres import PostgresStore, split_url
from sourcetruth.adapters.transports.outbox import outbox_copy
from sourcetruth.app._bookbase import (
    KEY_FILE_VARIABLE,
    SETTINGS_NAME,
    BookBase,
    check_sources,
    keep_or_make_key,
    parse_audit,
    read_key_file,
    unnamed,
)
from sourcetruth.app.settings import STARTER, check_adapters, parse_settings
from sourcetruth.audit import AuditRecord
from sourcetruth.exceptions import (
    AdapterError,
    SourceDataError,
    UsageError,
)
from sourcetruth.messages import DeliveryResult, Envelope
from sourcetruth.model import Channel
from sourcetruth.protocols import Store, Transport
from sourcetruth.serialise import converter, dumps

__all__ = ["DatabaseBook", "DatabaseDeliveryLog", "DatabaseOutbox"]

_log = logging.getLogger(__name__)

#: The names of a book's rows in ``book_settings``.
_SETTINGS_ROW: Final = "policy.toml"
_KEY_ROW: Final = "suppression.key"


class _Rows:
    """Statements on one book's rows, through its store's connection (``?`` marks)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._run(sql, args).fetchall()
        return rows

    def do(self, sql: str, *args: Any) -> int:
        count: int = self._run(sql, args).rowcount
        return count

    def _run(self, sql: str, args: tuple[Any, ...]) -> Any:
        try:
            return self._store._run(sql, args)
        except self._store.database_errors as error:
            raise database_error(self._store, error) from None


def database_error(store: PostgresStore, error: Exception) -> AdapterError:
    """The typed error for the driver's *error*: retryable only when the server was the cause."""
    import psycopg

    msg = f"the database of {store.name} failed: {type(error).__name__}"
    return AdapterError(msg, retryable=isinstance(error, psycopg.OperationalError))


def _password_words(password_env: str | None) -> list[str]:
    """The command's words naming the variable that holds the password, if one was named."""
    return ["--password-env", password_env] if password_env else []


def _storable(text: str, what: str) -> str:
    """*text*, refused unless PostgreSQL can keep it (valid UTF-8, no NUL)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        msg = f"{what} is not valid text (UTF-8), which a book in a database cannot keep"
        raise UsageError(msg) from None
    if "\x00" in text:
        msg = f"{what} holds a NUL character, which a book in a database cannot keep"
        raise UsageError(msg)
    return text


class DatabaseDeliveryLog:
    """A delivery log in the ``deliveries`` table: one row per event, in order.

    Rows hold keys and results only, like the file's lines; each statement
    is committed as it runs, so what was handed over survives a crash.
    """

    def __init__(self, rows: _Rows) -> None:
        self._rows = rows

    def __repr__(self) -> str:
        return "DatabaseDeliveryLog()"

    def handing_over(self, keys: Sequence[str]) -> None:
        # One statement: every key is logged, or none, as the file log's one append.
        self._rows.do(
            "INSERT INTO deliveries (key, event) SELECT k, 'handing-over' "
            "FROM unnest(?::text[]) WITH ORDINALITY AS t(k, i) ORDER BY i",
            list(keys),
        )

    def answered(self, results: Sequence[DeliveryResult]) -> None:
        for result in results:
            data = json.dumps(converter.unstructure(result), sort_keys=True)
            self._rows.do(
                "INSERT INTO deliveries (key, event, data) VALUES (?, 'answered', ?)",
                result.key,
                data,
            )

    def results(self) -> dict[str, DeliveryResult]:
        rows = self._rows.all("SELECT data FROM deliveries WHERE event = 'answered' ORDER BY n")
        found = {}
        for (data,) in rows:
            result = converter.structure(json.loads(data), DeliveryResult)
            found[result.key] = result  # the last answer wins
        return found

    def handed_over(self) -> frozenset[str]:
        rows = self._rows.all("SELECT DISTINCT key FROM deliveries WHERE event = 'handing-over'")
        return frozenset(key for (key,) in rows)

    def forget(self, keys: Iterable[str]) -> int:
        """Delete every row about *keys* (for an erasure); return how many went."""
        gone = sorted(set(keys))
        if not gone:
            return 0
        return self._rows.do("DELETE FROM deliveries WHERE key = ANY(?)", gone)


class DatabaseOutbox:
    """A transport that delivers nowhere and keeps each envelope as a row of ``outbox``.

    It honours idempotency keys: an envelope whose key it holds is accepted
    again and not kept twice.
    """

    def __init__(self, channel: Channel, rows: _Rows) -> None:
        self._channel = channel
        self._rows = rows

    def __repr__(self) -> str:
        return f"DatabaseOutbox({self._channel.value!r})"

    @property
    def channel(self) -> Channel:
        return self._channel

    def send(self, batch: Sequence[Envelope]) -> list[DeliveryResult]:
        results = []
        for envelope in batch:
            if envelope.channel is not self._channel:
                results.append(DeliveryResult.rejected(envelope.key, "wrong channel"))
                continue
            # JSON's escapes keep any text storable (no NUL, no lone surrogate reaches a row).
            self._rows.do(
                "INSERT INTO outbox (channel, key, data) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                self._channel.value,
                envelope.key,
                json.dumps(outbox_copy(envelope), sort_keys=True),
            )
            results.append(DeliveryResult.accepted(envelope.key, reference=envelope.key))
        return results


class DatabaseBook(BookBase[str]):
    """One school's book kept in a PostgreSQL database, named by its URL.

    The same interface as :class:`~sourcetruth.app.bookfolder.BookFolder`
    (both are :class:`~sourcetruth.app._bookbase.BookBase`): its audit
    records are named by their message id. *password_env* names a variable
    holding the password; without it, libpq's ``PGPASSWORD`` or ``.pgpass``.
    """

    def __init__(
        self, url: str, environ: Mapping[str, str], *, password_env: str | None = None
    ) -> None:
        super().__init__(environ)
        self.url = url
        connection, self.book_id = split_url(url)
        # The store refuses a URL with a password before it connects, and never echoes it.
        self._store = PostgresStore(
            connection, self.book_id, password_env=password_env, environ=environ
        )
        self._database: PostgresStore = self._store
        self._rows = _Rows(self._database)

    def __repr__(self) -> str:
        return f"DatabaseBook({self._database!r})"

    # -- creating and opening ---------------------------------------------------

    @classmethod
    def create(
        cls,
        url: str,
        *,
        settings: str = STARTER,
        environ: Mapping[str, str] = os.environ,
        password_env: str | None = None,
    ) -> DatabaseBook:
        """Make a new book at *url*: its settings (checked first) and suppression key.

        Refused (:class:`~sourcetruth.exceptions.UsageError`) if the database
        already holds a book of that id. An existing key at
        :data:`~sourcetruth.app.bookfolder.KEY_FILE_VARIABLE` is kept, and
        :attr:`reused_key` says so.
        """
        parsed = parse_settings(settings, file=SETTINGS_NAME)
        check_adapters(parsed, file=SETTINGS_NAME)
        check_sources(parsed, file=SETTINGS_NAME)
        _storable(settings, SETTINGS_NAME)
        book = cls(url, environ, password_env=password_env)
        try:
            if book._has_book(runs_too=True):
                msg = (
                    f"the database already holds the book {book.book_id}: open it, or name another"
                )
                raise UsageError(msg)
            key_file = book._key_file
            if key_file is not None:
                book.reused_key = keep_or_make_key(key_file)
            book._write_new(settings, make_key=key_file is None)
        except BaseException:
            book.close()
            raise
        return book

    def _write_new(self, settings: str, *, make_key: bool) -> None:
        """Write a new book's key (unless kept in a file) and settings, in one transaction.

        A statement's answer comes only when it is read (the store's commits
        are pipelined), so whether the settings were written is read back,
        and the database's refusals are read at the transaction's end.
        """
        store = self._database
        try:
            with store._transaction():
                rows = [(_SETTINGS_ROW, settings)]
                if make_key:
                    rows.insert(0, (_KEY_ROW, secrets.token_hex(32)))
                # The settings go last: the book is there once they are.
                for name, value in rows:
                    made = store._run(
                        "INSERT INTO book_settings (name, value) VALUES (?, ?) "
                        "ON CONFLICT DO NOTHING RETURNING 1",
                        (name, value),
                    ).fetchone()
                    if made is None:  # made meanwhile, by another init
                        msg = f"the database already holds the book {self.book_id}"
                        raise UsageError(msg)
        except store.database_errors as error:
            raise database_error(store, error) from None

    @classmethod
    def open(
        cls,
        url: str,
        *,
        environ: Mapping[str, str] = os.environ,
        password_env: str | None = None,
    ) -> DatabaseBook:
        """Open the book at *url*; it must have been made by :meth:`create`."""
        book = cls(url, environ, password_env=password_env)
        try:
            found = book._has_book()
        except BaseException:
            book.close()
            raise
        if not found:
            book.close()
            msg = (
                f"the database holds no book {book.book_id} (check --book, or "
                f"$SOURCETRUTH_BOOK); to make one, run: "
                f"{shlex.join(['sourcetruth', '--book', url, *_password_words(password_env)])} init"
            )
            raise UsageError(msg)
        return book

    def _has_book(self, *, runs_too: bool = False) -> bool:
        """Whether the book has its settings (or, with *runs_too*, any run in its journal)."""
        if self._rows.all("SELECT 1 FROM book_settings WHERE name = ?", _SETTINGS_ROW):
            return True
        return runs_too and bool(self._rows.all("SELECT 1 FROM runs LIMIT 1"))

    # -- where things are kept ---------------------------------------------------

    @property
    def where(self) -> str:
        return self.url

    @property
    def _settings_file(self) -> str:
        return f"{SETTINGS_NAME} of the book {self.book_id}"

    @property
    def _settings_base(self) -> None:
        return None

    def _settings_text(self) -> str:
        rows = self._rows.all("SELECT value FROM book_settings WHERE name = ?", _SETTINGS_ROW)
        if not rows:
            msg = "the book's settings are gone from the database"
            raise SourceDataError(msg, file=self._settings_file)
        text: str = rows[0][0]
        return text

    @property
    def _key_file(self) -> Path | None:
        named = self._environ.get(KEY_FILE_VARIABLE)
        return Path(named) if named else None

    def _suppression_key(self) -> str:
        if self._key_file is not None:
            return read_key_file(self._key_file)
        rows = self._rows.all("SELECT value FROM book_settings WHERE name = ?", _KEY_ROW)
        key = str(rows[0][0]).strip() if rows else ""
        if not key:
            msg = (
                f"the book {self.book_id} has no suppression key in the database; restore "
                f"it, or set {KEY_FILE_VARIABLE} to the file where it is kept"
            )
            raise AdapterError(msg)
        return key

    def _open_store(self) -> Store:
        msg = "the book's store was closed"
        raise AdapterError(msg)

    @property
    def delivery_log(self) -> DatabaseDeliveryLog:
        return DatabaseDeliveryLog(self._rows)

    def _outbox(self, channel: Channel, options: dict[str, Any] | None) -> Transport:
        if options:
            msg = (
                f"a book in a database keeps its outbox in the database: "
                f"{', '.join(sorted(options))} cannot be set"
            )
            raise UsageError(msg)
        return DatabaseOutbox(channel, self._rows)

    # -- audit records -------------------------------------------------------------

    def _audit_places(self) -> list[str]:
        return [m for (m,) in self._rows.all("SELECT message_id FROM audits ORDER BY message_id")]

    def _audit_place(self, message_id: str) -> str:
        return message_id

    def _read_audit(self, place: str) -> AuditRecord | None:
        try:
            _storable(place, "the message id")
        except UsageError:  # an id no row can have: never sent from this book
            return None
        rows = self._rows.all("SELECT data FROM audits WHERE message_id = ?", place)
        if not rows:
            return None
        return parse_audit(rows[0][0], f"the audit of {place!r} in the book {self.book_id}")

    def _write_audit(self, place: str, record: AuditRecord) -> None:
        self._rows.do(
            "INSERT INTO audits (message_id, data) VALUES (?, ?) "
            "ON CONFLICT (book, message_id) DO UPDATE SET data = excluded.data",
            _storable(place, "the message id"),
            _storable(dumps(record), "the message"),
        )

    def _delete_audit(self, place: str) -> None:
        self._rows.do("DELETE FROM audits WHERE message_id = ?", place)

    def save_audit(self, record: AuditRecord) -> str:
        """Keep *record*, replacing an earlier record of the same message: where it is."""
        self._write_audit(record.message.id, record)
        return f"{self.where} (the audit of {record.message.id})"

    def sent_ids(self, limit: int) -> list[str]:
        rows = self._rows.all("SELECT message_id FROM audits ORDER BY message_id LIMIT ?", limit)
        return [m for (m,) in rows]

    def _clean_outboxes(self, dropped: Collection[str], changed: Collection[str]) -> None:
        if dropped:
            self._rows.do("DELETE FROM outbox WHERE key = ANY(?)", sorted(dropped))
        if not changed:
            return
        rows = self._rows.all(
            "SELECT channel, key, data FROM outbox WHERE key = ANY(?)", sorted(changed)
        )
        for channel, key, data in rows:
            envelope = unnamed(data)
            if envelope is None:
                self._rows.do("DELETE FROM outbox WHERE channel = ? AND key = ?", channel, key)
                continue
            self._rows.do(
                "UPDATE outbox SET data = ? WHERE channel = ? AND key = ?",
                json.dumps(envelope, sort_keys=True),
                channel,
                key,
            )
