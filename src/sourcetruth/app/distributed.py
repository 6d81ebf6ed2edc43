"""Many schools' nightly syncs, one task each: in this process or on a Dask cluster.

A provider syncs thousands of schools every night, and each school's merge is
independent of every other's. This module cuts that work into small,
picklable units: a :class:`SchoolJob` names one school's book (a store path),
its export (a path) and the policy to merge with; :func:`nightly` runs one job
(read the export, :func:`~sourcetruth.adapters.stores.base.apply` it to the book)
and returns a small :class:`SchoolResult`; :func:`run_many` runs a list of
jobs, one by one in this process or as tasks on a ``dask.distributed``
cluster, and returns their results in the jobs' order.

The merge itself knows nothing of Dask: this module is a thin layer over
:func:`~sourcetruth.adapters.stores.base.apply`, and it imports nothing from Dask
(``pip install 'sourcetruth[dask]'`` brings it). Pass a
``distributed.Client`` to :func:`run_many` to use a cluster; without one the
jobs run one after the other here, which is the reference behaviour: a cluster
gives the same results and byte-identical books.

A job names books, never holds them: each task opens its school's store
where it runs. A SQLite or JSON book is a path every worker must reach (a
shared filesystem). A PostgreSQL book is a URL naming the database and the
school (``postgresql://HOST/DB?book=SCHOOL``), with the password read on the
worker from the environment variable ``password_env`` names, so workers that
share only the database need no shared disk. The export is a path too, or
the export's bytes carried in the job (a serialised snapshot, or a OneRoster
``.zip``), which needs no path at all. One school's failure never stops the
others: it comes back as a result with status ``failed`` and an error
message naming the school.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from attrs import Factory, field, frozen

from sourcetruth.adapters import registry
from sourcetruth.adapters.sources.base import Reading
from sourcetruth.adapters.stores.base import apply
from sourcetruth.adapters.stores.postgres import is_book_url, open_book_url, split_url
from sourcetruth.changes import ConfirmSync
from sourcetruth.exceptions import AdapterError, SourceTruthError, UsageError, format_errors
from sourcetruth.journal import Run
from sourcetruth.merge import Change
from sourcetruth.model import Book, Snapshot, utc
from sourcetruth.policy import Policy
from sourcetruth.protocols import Store
from sourcetruth.report import MergeResult, counts
from sourcetruth.serialise import loads

__all__ = ["FAILED", "POSTGRES", "SNAPSHOT", "SchoolJob", "SchoolResult", "nightly", "run_many"]

_log = logging.getLogger(__name__)

#: The ``adapter`` of a job whose export is a :class:`~sourcetruth.Snapshot`
#: serialised with :func:`sourcetruth.dumps` (one JSON file).
SNAPSHOT: Final = "snapshot"
#: The ``store_kind`` of a job whose book is in a PostgreSQL database (a book URL).
POSTGRES: Final = "postgres"
#: The ``status`` of a :class:`SchoolResult` whose job did not get as far as a merge.
FAILED: Final = "failed"
#: At most this many problems of a rejected file are kept in a result's error.
_MAX_PROBLEMS: Final = 10
#: The first bytes of a zip file: a carried export that is one is read from ``export.zip``.
_ZIP_MAGIC: Final = b"PK\x03\x04"
#: An environment variable's name, as a shell writes it.
_VARIABLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A libpq ``key=value`` connection string that sets a password.
_CONNINFO_PASSWORD: Final = re.compile(r"(?:^|\s)password\s*=", re.IGNORECASE)


def _aware(_instance: object, _attribute: object, value: Any) -> None:
    if value is not None:
        utc(value)  # raises UsageError for a naive time or for what is not a time


def _export(value: str | bytes | os.PathLike[str]) -> str | bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)  # the export itself, carried in the job
    return os.fspath(value)


def _export_repr(value: str | bytes) -> str:
    # A carried export is a school's personal data: a log of the job must not hold it.
    return f"<{len(value)} bytes>" if isinstance(value, bytes) else repr(value)


def _store_kind(job: SchoolJob) -> str:
    return POSTGRES if is_book_url(job.store) else "sqlite"


def _holds_password(url: str) -> bool:
    if not is_book_url(url):
        return _CONNINFO_PASSWORD.search(url) is not None
    parts = urlsplit(url.partition("#")[0])
    if parts.password:
        return True
    return any(name.lower() == "password" for name, _ in parse_qsl(parts.query, True))


def _check_book(job: SchoolJob, _attribute: object, kind: str) -> None:
    if kind != POSTGRES:
        if job.password_env is not None:
            msg = f"{job.name}: password_env is for a PostgreSQL book, and the store is {kind!r}"
            raise UsageError(msg)
        return
    # Never echo the URL: the point is that what it holds may be a secret.
    if _holds_password(job.store):
        msg = (
            f"{job.name}: the store's URL holds a password, which would travel in the job: "
            "name the environment variable that holds it on the workers (password_env)"
        )
        raise UsageError(msg)
    split_url(job.store)  # raises UsageError for a URL naming no book
    if job.password_env is not None and not _VARIABLE.fullmatch(job.password_env):
        msg = f"{job.name}: password_env is the name of an environment variable, not a value"
        raise UsageError(msg)


def _options(value: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    pairs = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(k), v) for k, v in pairs))


@frozen
class SchoolJob:
    """One school's nightly sync, as a small picklable value.

    ``name`` names the school in results and errors. ``store`` is the path of
    its book, opened with the store adapter ``store_kind`` (``"sqlite"`` by
    default; a missing file starts an empty book), or the URL of a
    PostgreSQL book, ``postgresql://HOST/DATABASE?book=SCHOOL_ID``
    (``store_kind`` is then :data:`POSTGRES`). Such a URL never holds a
    password: a job whose URL does is refused with a
    :class:`~sourcetruth.UsageError` when it is made, and the password is
    read, where the job runs, from the environment variable named by
    ``password_env`` (or from libpq's ``PGPASSWORD`` or ``.pgpass``).

    ``export`` is the path of what the source delivered, or its bytes
    carried in the job (a cluster then needs no shared path: see
    docs/distributed.md), read with the source adapter ``adapter`` of
    :mod:`sourcetruth.adapters.registry` (``"oneroster"``, ``"sds"``, or one
    installed as a plugin) for source ``source``, with ``options`` as the
    adapter's keyword arguments (``org``, ``max_reject_fraction``...) and
    ``extracted_at`` as the time of the extract (``at`` when None); or, with
    ``adapter=SNAPSHOT``, a serialised :class:`~sourcetruth.Snapshot`
    (:func:`sourcetruth.dumps`) of that source. An adapter given bytes reads
    them from a private temporary file, removed once read (``export.zip``
    when they are a zip file, as a OneRoster bundle may be, else
    ``export``); a job's ``repr`` shows only their length.

    The merge runs with ``policy`` at ``at`` by ``by``. ``confirm`` is the
    token of a held sync (:attr:`SchoolResult.held`) to apply this export
    anyway, as ``sourcetruth sync --confirm`` does. ``run_id`` names the run in
    the journal (the default is the input's hash and the book's sequence).

    Adapters added with :func:`~sourcetruth.adapters.registry.register` exist
    only in the process that registered them: on a cluster, install adapters
    as plugins so that every worker finds them.
    """

    name: str
    store: str = field(converter=os.fspath)
    export: str | bytes = field(converter=_export, repr=_export_repr)
    policy: Policy
    at: datetime = field(validator=_aware)
    by: str = "nightly sync"
    adapter: str = "oneroster"
    source: str = "mis"
    options: tuple[tuple[str, Any], ...] = field(default=(), converter=_options)
    extracted_at: datetime | None = field(default=None, validator=_aware)
    confirm: str | None = None
    store_kind: str = field(default=Factory(_store_kind, takes_self=True), validator=_check_book)
    run_id: str | None = None
    password_env: str | None = None


@frozen
class SchoolResult:
    """What one school's sync did, in a few counts; the whole report is in its journal.

    ``status`` is the merge's (``applied``, ``held``, ``no-change``) or
    :data:`FAILED` when the job failed before its merge was committed, with
    ``error`` saying why, prefixed by the school's name (as the library's
    errors do, it names files, lines and fields, never personal values), and
    ``retryable`` true when running the job again may succeed (an
    input/output failure said so, or another run committed to the book
    first). ``run`` is the id of the journal's run (its
    :class:`~sourcetruth.adapters.stores.base.Run` holds the full report):
    ``created``, ``changes``, ``departed``, ``returned``, ``lost``,
    ``unnormalised`` and ``duplicates`` count the report's entries (``lost``
    are the overrides to update at source). ``notices`` and ``rejected`` come
    from reading the export. ``held`` is the token that confirms a held sync
    (see :attr:`SchoolJob.confirm`) and ``held_reason`` says why it was held.
    """

    name: str
    status: str
    run: str | None = None
    created: int = 0
    changes: int = 0
    departed: int = 0
    returned: int = 0
    lost: int = 0
    unnormalised: int = 0
    duplicates: int = 0
    notices: int = 0
    rejected: int = 0
    held: str | None = None
    held_reason: str | None = None
    error: str | None = None
    retryable: bool = False

    @property
    def failed(self) -> bool:
        """True when the job failed (see ``error``)."""
        return self.status == FAILED


class _Recording:
    """A store that remembers the run committed through it (reading the journal costs more)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.run: Run | None = None

    def load(self) -> Book:
        return self._store.load()

    def commit(self, before: Book, result: MergeResult, run: Run) -> None:
        self._store.commit(before, result, run)
        self.run = run

    def journal(self) -> tuple[Run, ...]:
        return self._store.journal()

    def close(self) -> None:
        self._store.close()


def _snapshot(job: SchoolJob, text: bytes) -> Reading:
    if job.options:
        msg = "a serialised snapshot takes no adapter options"
        raise UsageError(msg)
    snapshot = loads(text, Snapshot)
    if snapshot.source != job.source:
        msg = f"the snapshot is of source {snapshot.source!r}, not {job.source!r}"
        raise UsageError(msg)
    return Reading(snapshot)


def _read(job: SchoolJob, folder: str | None) -> Reading:
    """Read the job's export; a carried one that needs a file is written into *folder*."""
    if job.adapter == SNAPSHOT:
        if isinstance(job.export, bytes):
            return _snapshot(job, job.export)
        try:
            text = Path(job.export).read_bytes()
        except OSError as error:
            msg = f"cannot read the snapshot {Path(job.export).name}: {error.strerror}"
            raise AdapterError(msg) from None
        return _snapshot(job, text)
    export = job.export
    if isinstance(export, bytes):
        assert folder is not None
        path = Path(folder, "export.zip" if export.startswith(_ZIP_MAGIC) else "export")
        path.write_bytes(export)
        export = str(path)
    factory = registry.get("source", job.adapter)
    adapter = factory(export, source=job.source, **dict(job.options))
    reading = adapter.read(extracted_at=job.at if job.extracted_at is None else job.extracted_at)
    if not isinstance(reading, Reading):
        msg = f"the {job.adapter!r} adapter returned a {type(reading).__name__}, not a Reading"
        raise UsageError(msg)
    return reading


def _open(job: SchoolJob) -> Store:
    if job.store_kind == POSTGRES:
        store: Store = open_book_url(job.store, password_env=job.password_env)
        return store
    opened: Store = registry.get("store", job.store_kind)(job.store)
    return opened


def _message(error: BaseException) -> str:
    lines = format_errors(error).splitlines()
    if len(lines) > _MAX_PROBLEMS + 1:
        more = len(lines) - 1 - _MAX_PROBLEMS
        lines = [*lines[: _MAX_PROBLEMS + 1], f"  (and {more} more)"]
    return "\n".join(lines)


def _failed(name: str, error: BaseException, folder: str | None = None) -> SchoolResult:
    if isinstance(error, SourceTruthError | OSError):
        # The library's errors name where, never a personal value.
        text = f"{name}: {type(error).__name__}: {_message(error)}"
        if folder is not None:
            # A carried export's folder differs from run to run and from worker
            # to worker: name its file only, so that every run reports the same.
            text = text.replace(folder + os.sep, "")
    else:
        # Anything else is a bug, whose message may hold anything: keep its
        # type here and the whole traceback in the log where it happened.
        text = f"{name}: unexpected {type(error).__name__} (see the log of the process that ran it)"
    retryable = getattr(error, "retryable", False) is True
    return SchoolResult(name, FAILED, error=text, retryable=retryable)


def nightly(job: SchoolJob) -> SchoolResult:
    """Run one school's sync: read its export, merge it into its book, commit.

    Never raises for the school's own trouble (an unreadable export, a
    rejected file, a book it cannot open): the result says ``failed`` and
    why. A held sync commits nothing but its run, like
    :func:`~sourcetruth.adapters.stores.base.apply`.
    """
    folder = None
    try:
        if isinstance(job.export, bytes) and job.adapter != SNAPSHOT:
            folder = tempfile.mkdtemp(prefix="sourcetruth-export-")  # this user's only
        try:
            reading = _read(job, folder)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        change: Change = (
            reading.snapshot if job.confirm is None else ConfirmSync(reading.snapshot, job.confirm)
        )
        store = _Recording(_open(job))
        try:
            result = apply(
                store, change, policy=job.policy, at=job.at, by=job.by, run_id=job.run_id
            )
        finally:
            store.close()
        run = None if store.run is None else store.run.id
    except Exception as error:  # one school's failure must not stop the others
        if not isinstance(error, SourceTruthError | OSError):
            _log.exception("the nightly sync of %s failed unexpectedly", job.name)
        return _failed(job.name, error, folder)
    report = result.report
    return SchoolResult(
        job.name,
        report.status.value,
        run=run,
        **counts(report),
        notices=len(reading.notices),
        rejected=reading.rejected,
        held=None if report.held is None else report.held.token,
        held_reason=None if report.held is None else report.held.reason,
    )


def _check(jobs: Sequence[SchoolJob]) -> None:
    names: set[str] = set()
    stores: set[str] = set()
    for job in jobs:
        if not isinstance(job, SchoolJob):
            msg = f"run_many takes SchoolJob values, not {type(job).__name__}"
            raise UsageError(msg)
        # Two jobs on one book would race on a cluster: refuse them up front.
        if job.store_kind == POSTGRES:
            where = " ".join(split_url(job.store))
        else:
            where = os.path.normcase(os.path.abspath(job.store))
        if job.name in names or where in stores:
            msg = f"two jobs share the school {job.name!r} or its store; one job per book"
            raise UsageError(msg)
        names.add(job.name)
        stores.add(where)


def run_many(jobs: Iterable[SchoolJob], *, client: Any = None) -> list[SchoolResult]:
    """Run every job and return their results in the jobs' order.

    Without *client*, the jobs run one after the other in this process. With
    a ``distributed.Client``, each job is a task (``client.map`` with
    ``pure=False``, so a rerun with the same jobs runs again rather than
    reusing a result); a task whose worker died comes back as a ``failed``
    result naming its school, like any other failure. Raises
    :class:`~sourcetruth.UsageError` when two jobs name the same school or
    the same store.
    """
    todo = list(jobs)
    _check(todo)
    if client is None:
        return [nightly(job) for job in todo]
    from distributed import wait  # the optional extra: only needed with a client

    futures: list[Any] = client.map(nightly, todo, pure=False)
    try:
        wait(futures)  # type: ignore[no-untyped-call]
        finished = [f for f in futures if f.status == "finished"]
        gathered: list[SchoolResult] = client.gather(finished)
        done = dict(zip((f.key for f in finished), gathered, strict=True))
        results: list[SchoolResult] = []
        for job, future in zip(todo, futures, strict=True):
            if future.key in done:
                results.append(done[future.key])
            else:
                # nightly() never raises: this is the cluster's trouble (a
                # worker that died, a task cancelled), so trying again may help.
                error = future.exception() if future.status == "error" else None
                why = f"the task {future.status}" if error is None else _message(error)
                text = f"{job.name}: the cluster did not run the sync: {why}"
                results.append(SchoolResult(job.name, FAILED, error=text, retryable=True))
        return results
    finally:
        client.cancel(futures)
