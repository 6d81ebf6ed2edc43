"""A night of many schools on a cluster whose workers share only a PostgreSQL database.

Each job names its book by URL (one database, a book per school), carries
its export's bytes and names the environment variable that holds the
password on the worker: no path at all travels to the workers.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.postgres_server import PostgresServer

from school import guardian, london, pupil
from sourcetruth import (
    Policy,
    Record,
    Snapshot,
    Source,
    SourceKind,
    dumps,
)
from sourcetruth.adapters.sources.oneroster import write_bundle
from sourcetruth.adapters.stores.postgres import PostgresStore, book_url, is_book_url
from sourcetruth.app.distributed import FAILED, POSTGRES, SNAPSHOT, SchoolJob, run_many
from test_distributed import QUIET

pytestmark = pytest.mark.usefixtures("postgres_server")

POLICY = Policy(sources=(Source("mis", SourceKind.MIS),))
SCHOOLS = 6
FAMILIES = 15  # a pupil and a guardian each: 30 contacts a school
#: The variable the workers read the password from (the test server trusts its
#: socket, so any value does: what matters is that the worker finds it).
PASSWORD_ENV = "SOURCETRUTH_TEST_SCHOOLS_PASSWORD"


def families(night: int) -> list[int]:
    """The families on roll: night 2 loses families 1 and 2 and gains 16 and 17; night 3 loses 3."""
    if night == 1:
        return list(range(1, FAMILIES + 1))
    kept = list(range(3, FAMILIES + 3))
    return kept if night == 2 else kept[1:]


def snapshot(school: int, night: int) -> Snapshot:
    """School *school*'s full snapshot on *night*; phones change on nights 2 and 3."""
    at = london(22 + night, 1)
    records: list[Record] = []
    for n in families(night):
        number = school * 100 + n  # 07700 900000 to 900999: Ofcom's drama range
        if night >= 2 and n in (4, 5):
            number += 50
        if night == 3 and n == 6:
            number += 60
        family = f"Family{school}"
        records.append(pupil(f"P{n}", "7", "", given=f"Pupil{n}", family=family))
        records.append(
            guardian(
                f"G{n}",
                f"P{n}",
                mobile=f"07700 900{number:03d}",
                email=f"parent{n}@school{school}.test",
                given=f"Parent{n}",
                family=family,
            )
        )
    return Snapshot("mis", at, records)


def bundle_zip(shot: Snapshot) -> bytes:
    """*shot* as a zipped OneRoster bundle, made in a folder that is gone when this returns."""
    folder = Path(tempfile.mkdtemp())
    try:
        write_bundle(shot, folder)
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w") as archive:
            for file in sorted(folder.iterdir()):
                archive.write(file, file.name)
        return data.getvalue()
    finally:
        shutil.rmtree(folder)


def jobs(database: str, night: int) -> list[SchoolJob]:
    """The night's jobs: even schools carry a zipped bundle, odd ones a serialised snapshot."""
    at = london(22 + night, 2)
    made = []
    for school in range(SCHOOLS):
        shot = snapshot(school, night)
        even = school % 2 == 0
        made.append(
            SchoolJob(
                f"school-{school}",
                book_url(database, f"school-{school}"),
                bundle_zip(shot) if even else dumps(shot).encode(),
                POLICY,
                at,
                adapter="oneroster" if even else SNAPSHOT,
                extracted_at=shot.extracted_at,
                password_env=PASSWORD_ENV,
            )
        )
    return made


def book_and_journal(database: str, book: str) -> tuple[str, list[str]]:
    """A book as the database holds it, and its journal, in canonical form."""
    store = PostgresStore(database, book)
    try:
        return dumps(store.load()), [dumps(run) for run in store.journal()]
    finally:
        store.close()


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Two worker processes, one thread each, that find the password's variable set."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        env={PASSWORD_ENV: "not-checked-by-the-test-server"},
        **QUIET,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_three_nights_on_a_cluster_equal_one_by_one(
    client: Any, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six schools' books in one database, three nights on the cluster: as one by one."""
    monkeypatch.setenv(PASSWORD_ENV, "not-checked-by-the-test-server")
    on_cluster = postgres_server.new_database("dask_cluster")
    one_by_one = postgres_server.new_database("dask_local")
    expected = {
        1: {(30, 0, 1)},  # created, departed, changes > 0
        2: {(4, 4, 1)},
        3: {(0, 2, 1)},
    }
    for night in (1, 2, 3):
        todo = jobs(on_cluster, night)
        # Nothing a worker would need a shared disk for: a book URL and the export's bytes.
        assert all(is_book_url(j.store) and isinstance(j.export, bytes) for j in todo)
        assert {j.store_kind for j in todo} == {POSTGRES}
        results = run_many(todo, client=client)
        assert results == run_many(jobs(one_by_one, night))
        assert [r.status for r in results] == ["applied"] * SCHOOLS, [r.error for r in results]
        assert {(r.created, r.departed, int(r.changes > 0)) for r in results} == expected[night]
    # Each journal holds every night's whole report: comparing them once, with
    # the books, checks the nights before as well.
    for result in results:
        book, journal = book_and_journal(on_cluster, result.name)
        assert (book, journal) == book_and_journal(one_by_one, result.name)
        assert len(journal) == 3
        assert f'"id":"{result.run}"' in journal[-1]


def test_the_password_is_read_where_the_job_runs(
    client: Any, postgres_server: PostgresServer
) -> None:
    """A job naming a variable the workers lack fails that school, naming the variable."""
    database = postgres_server.new_database("dask_password")
    job = jobs(database, 1)[1]
    lacking = SchoolJob(
        job.name,
        job.store,
        job.export,
        POLICY,
        job.at,
        adapter=SNAPSHOT,
        password_env="SOURCETRUTH_TEST_NOT_ON_THE_WORKERS",
    )
    [result] = run_many([lacking], client=client)
    assert (result.status, result.retryable) == (FAILED, False)
    assert result.error == (
        "school-1: UsageError: the variable SOURCETRUTH_TEST_NOT_ON_THE_WORKERS "
        "that holds the password is not set"
    )
    [result] = run_many([job], client=client)
    assert result.status == "applied"
