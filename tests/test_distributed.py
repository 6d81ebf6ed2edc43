"""Many schools' nightly syncs as tasks on a Dask cluster, equal to running them one by one."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import sourcetruth.app.distributed
from school import london
from sourcetruth import (
    ContactData,
    Email,
    Phone,
    PhoneType,
    Policy,
    Record,
    Relationship,
    Role,
    Snapshot,
    Source,
    SourceKind,
    UsageError,
    dumps,
)
from sourcetruth.adapters import registry
from sourcetruth.adapters.sources.oneroster import write_bundle
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.app.distributed import (
    FAILED,
    POSTGRES,
    SNAPSHOT,
    SchoolJob,
    SchoolResult,
    nightly,
    run_many,
)

POLICY = Policy(sources=(Source("mis", SourceKind.MIS),))
SCHOOLS = 6
BROKEN = "school-4"  # its first night's export is not a OneRoster bundle
HELD = "school-3"  # its second night departs half the school: the guard holds it
#: One thread a worker, no dashboard, and the scheduler's HTTP server on a free port.
QUIET: dict[str, Any] = {
    "threads_per_worker": 1,
    "dashboard_address": None,
    "scheduler_kwargs": {"dashboard_address": ":0"},
}


def snapshot(school: int, night: int, at: datetime) -> Snapshot:
    """School *school*'s full snapshot on *night*: 6 pupils, a guardian each, distinct data.

    Night 2 changes two mobiles and one email, has one leaver and one joiner;
    at :data:`HELD` it keeps only three families.
    """
    families = list(range(1, 7)) if night == 1 else [2, 3, 4, 5, 6, 7]
    if night > 1 and f"school-{school}" == HELD:
        families = [1, 2, 3]
    records: list[Record] = []
    for n in families:
        number = school * 100 + n * 10  # 07700 900000 to 900999: Ofcom's drama range
        if night > 1 and n in (2, 3):
            number += 1
        email = f"parent{n}@school{school}.test" if night == 1 or n != 4 else f"p{n}@home.test"
        records.append(
            Record(
                f"P{n}",
                ContactData(f"Pupil{n}", f"Family{school}", Role.PUPIL, year_group=str(6 + n % 3)),
            )
        )
        records.append(
            Record(
                f"G{n}",
                ContactData(
                    f"Parent{n}",
                    f"Family{school}",
                    Role.GUARDIAN,
                    phones=(Phone(f"07700 900{number:03d}", PhoneType.MOBILE),),
                    emails=(Email(email),),
                    relationships=(Relationship(f"P{n}"),),
                ),
            )
        )
    return Snapshot("mis", at, records)


def exports(root: Path, night: int, at: datetime) -> dict[str, tuple[str, Path]]:
    """Each school's export for *night*: even schools a OneRoster bundle, odd a snapshot file."""
    found: dict[str, tuple[str, Path]] = {}
    for school in range(SCHOOLS):
        name = f"school-{school}"
        shot = snapshot(school, night, at)
        if school % 2 == 0:
            bundle = root / f"night{night}" / name
            bundle.mkdir(parents=True)
            write_bundle(shot, bundle)
            if name == BROKEN and night == 1:
                (bundle / "users.csv").write_text("not,a,users,file\n1,2\n", encoding="utf-8")
            found[name] = ("oneroster", bundle)
        else:
            file = root / f"night{night}" / f"{name}.json"
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(dumps(shot), encoding="utf-8")
            found[name] = (SNAPSHOT, file)
    return found


def jobs(
    books: Path, found: dict[str, tuple[str, Path]], at: datetime, **extra: Any
) -> list[SchoolJob]:
    books.mkdir(exist_ok=True)
    return [
        SchoolJob(
            name,
            books / f"{name}.sqlite",
            export,
            POLICY,
            at,
            adapter=adapter,
            extracted_at=at.replace(minute=0, hour=1),
            **extra.get(name, {}),
        )
        for name, (adapter, export) in found.items()
    ]


def book_bytes(path: Path) -> tuple[str, list[str]]:
    """The book a store holds and its journal, in canonical form."""
    store = SqliteStore(path)
    try:
        return dumps(store.load()), [dumps(run) for run in store.journal()]
    finally:
        store.close()


def assert_same_books(first: Path, second: Path, results: list[SchoolResult]) -> None:
    """Each school's book and journal are the same in both folders; results name their runs."""
    for school, result in zip(range(SCHOOLS), results, strict=True):
        name = f"school-{school}.sqlite"
        book, journal = book_bytes(first / name)
        assert (book, journal) == book_bytes(second / name), name
        if not result.failed:
            assert result.run is not None
            assert f'"id":"{result.run}"' in journal[-1]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A local cluster of two worker processes, one thread each, for this module."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, **QUIET)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


class TestOnACluster:
    def test_three_nights_equal_one_by_one(self, client: Any, tmp_path: Path) -> None:
        """Every night on the cluster gives the results and the books of one by one."""
        on_cluster, one_by_one = tmp_path / "cluster", tmp_path / "local"

        # Night 1: the initial sync of every school, one of them broken.
        at = london(23, 2)
        found = exports(tmp_path / "exports", 1, at)
        first = run_many(jobs(on_cluster, found, at), client=client)
        assert first == run_many(jobs(one_by_one, found, at))
        assert [r.name for r in first] == [f"school-{i}" for i in range(SCHOOLS)]
        assert_same_books(on_cluster, one_by_one, first)

        broken = first[4]
        assert broken.failed
        assert broken.error is not None
        assert broken.error.startswith(f"{BROKEN}: ")
        assert "users.csv" in broken.error
        assert book_bytes(on_cluster / f"{BROKEN}.sqlite")[1] == []  # nothing journalled
        applied = [r for r in first if not r.failed]
        assert len(applied) == SCHOOLS - 1
        assert {(r.status, r.created, r.departed) for r in applied} == {("applied", 12, 0)}

        # Night 2: changes everywhere, the broken school fixed, one school held.
        at = london(24, 2)
        found = exports(tmp_path / "exports", 2, at)
        second = run_many(jobs(on_cluster, found, at), client=client)
        assert second == run_many(jobs(one_by_one, found, at))
        assert_same_books(on_cluster, one_by_one, second)
        by_name = {r.name: r for r in second}
        assert by_name[BROKEN].status == "applied"
        assert by_name[BROKEN].created == 12
        held = by_name[HELD]
        assert held.status == "held"
        assert held.held is not None
        assert held.held_reason
        for name in {f"school-{i}" for i in range(SCHOOLS)} - {BROKEN, HELD}:
            assert by_name[name].status == "applied"
            assert (by_name[name].created, by_name[name].departed) == (2, 2)
            assert by_name[name].changes > 0

        # Night 3: the held school confirmed with its token; the others read the
        # same exports again (the bundles at a new extract time) and change nothing.
        at = london(25, 2)
        confirm = {HELD: {"confirm": held.held}}
        third = run_many(jobs(on_cluster, found, at, **confirm), client=client)
        assert third == run_many(jobs(one_by_one, found, at, **confirm))
        assert_same_books(on_cluster, one_by_one, third)
        by_name = {r.name: r for r in third}
        assert (by_name[HELD].status, by_name[HELD].departed) == ("applied", 6)
        others = [r for r in third if r.name != HELD]
        assert {(r.created, r.changes, r.departed) for r in others} == {(0, 0, 0)}

    def test_a_rerun_runs_again(self, client: Any, tmp_path: Path) -> None:
        """Equal jobs submitted twice run twice (pure=False): the second finds nothing to do."""
        at = london(23, 2)
        found = exports(tmp_path / "exports", 1, at)
        todo = jobs(tmp_path / "books", found, at)
        first = run_many(todo, client=client)
        again = run_many(todo, client=client)
        assert [r.status for r in first if not r.failed] == ["applied"] * (SCHOOLS - 1)
        assert [r.status for r in again if not r.failed] == ["no-change"] * (SCHOOLS - 1)

    def test_a_task_the_cluster_lost_is_a_failed_result(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A task that errs on the cluster (a worker died, say) fails its school only, retryably."""
        distributed = pytest.importorskip("distributed")
        real = sourcetruth.app.distributed.nightly

        def dies_at_school_2(job: SchoolJob) -> SchoolResult:
            if job.name == "school-2":
                raise OSError("the worker went away")
            return real(job)

        monkeypatch.setattr(sourcetruth.app.distributed, "nightly", dies_at_school_2)
        at = london(23, 2)
        found = exports(tmp_path / "exports", 1, at)
        with (
            distributed.LocalCluster(n_workers=1, processes=False, **QUIET) as cluster,
            distributed.Client(cluster) as in_process,
        ):
            results = run_many(jobs(tmp_path / "books", found, at), client=in_process)
        lost = results[2]
        assert (lost.name, lost.status, lost.retryable) == ("school-2", FAILED, True)
        assert lost.error == "school-2: the cluster did not run the sync: the worker went away"
        assert [r.status for r in results] == [
            "applied",
            "applied",
            FAILED,
            "applied",
            FAILED,
            "applied",
        ]


class TestJobs:
    def test_a_job_is_small_and_picklable(self, tmp_path: Path) -> None:
        """A job holds paths and the policy, not a book: it pickles to a few hundred bytes."""
        job = SchoolJob(
            "school-0", tmp_path / "b.sqlite", tmp_path / "export", POLICY, london(23, 2)
        )
        data = pickle.dumps(job)
        assert pickle.loads(data) == job
        assert len(data) < 2048
        assert job.store == str(tmp_path / "b.sqlite")
        result = SchoolResult("school-0", FAILED, error="school-0: gone")
        assert pickle.loads(pickle.dumps(result)) == result

    def test_a_naive_time_is_refused(self, tmp_path: Path) -> None:
        """A job dated without a timezone is refused with a UsageError when it is made."""
        with pytest.raises(UsageError, match="naive"):
            SchoolJob("s", tmp_path / "b.sqlite", tmp_path / "e", POLICY, datetime(2026, 11, 23))

    def test_adapter_options_are_kept_sorted(self, tmp_path: Path) -> None:
        """A job keeps its adapter options as a tuple of (name, value) pairs sorted by name."""
        job = SchoolJob(
            "s",
            "b.sqlite",
            "e",
            POLICY,
            london(23, 2),
            options={"org": "school", "allow_cp1252": True},
        )
        assert job.options == (("allow_cp1252", True), ("org", "school"))

    def test_two_jobs_on_one_book_are_refused(self, tmp_path: Path) -> None:
        """On a cluster they would race: run_many refuses them before running anything."""
        at = london(23, 2)
        one = SchoolJob("a", tmp_path / "b.sqlite", tmp_path / "e", POLICY, at)
        other = SchoolJob("b", tmp_path / "x" / ".." / "b.sqlite", tmp_path / "e", POLICY, at)
        with pytest.raises(UsageError, match="one job per book"):
            run_many([one, other])
        with pytest.raises(UsageError, match="one job per book"):
            run_many([one, SchoolJob("a", tmp_path / "c.sqlite", tmp_path / "e", POLICY, at)])
        assert not (tmp_path / "b.sqlite").exists()


class TestPostgresBooks:
    """A job naming a PostgreSQL book by URL: checked when it is made, never holding a password."""

    URL = "postgresql://nightly@db.example.org/schools?book=school-7"

    @pytest.mark.parametrize(
        "store",
        [
            "postgresql://nightly:Sw0rdfish@db.example.org/schools?book=school-7",
            "postgres://nightly:Sw0rdfish@db.example.org/schools#school-7",
            "postgresql://db.example.org/schools?password=Sw0rdfish&book=school-7",
            "postgresql://db.example.org/schools?PASSWORD=Sw0rdfish#school-7",
        ],
    )
    def test_a_url_holding_a_password_is_refused_unsaid(self, store: str) -> None:
        """The password would travel in the job and its logs: refused, and not repeated."""
        with pytest.raises(UsageError, match="holds a password") as raised:
            SchoolJob("school-7", store, b"{}", POLICY, london(23, 2), adapter=SNAPSHOT)
        assert "Sw0rdfish" not in str(raised.value)
        assert str(raised.value).startswith("school-7: ")

    def test_a_connection_string_holding_a_password_is_refused(self) -> None:
        """libpq's key=value form with store_kind=POSTGRES is checked the same way."""
        store = "host=db.example.org dbname=schools password = Sw0rdfish#school-7"
        with pytest.raises(UsageError, match="holds a password") as raised:
            SchoolJob("s", store, b"{}", POLICY, london(23, 2), store_kind=POSTGRES)
        assert "Sw0rdfish" not in str(raised.value)

    def test_a_url_naming_no_book_is_refused(self) -> None:
        """Every school's book is in one database: a URL must say which one is this school's."""
        with pytest.raises(UsageError, match="names its school"):
            SchoolJob("s", "postgresql://db.example.org/schools", b"", POLICY, london(23, 2))

    def test_password_env_names_a_variable_of_a_postgres_book(self, tmp_path: Path) -> None:
        """password_env takes a variable's name, not a value, and only for a PostgreSQL book."""
        at = london(23, 2)
        with pytest.raises(UsageError, match="not a value") as raised:
            SchoolJob("s", self.URL, b"", POLICY, at, password_env="Sw0rd fish!")
        assert "Sw0rd" not in str(raised.value)
        with pytest.raises(UsageError, match="for a PostgreSQL book"):
            SchoolJob("s", tmp_path / "b.sqlite", b"", POLICY, at, password_env="DB_PASSWORD")

    def test_a_job_carrying_its_export_is_small_and_says_no_more_than_its_size(self) -> None:
        """A URL job is a postgres job; its repr shows the export's length, not its contents."""
        export = dumps(snapshot(7, 1, london(23, 2))).encode()
        job = SchoolJob(
            "school-7",
            self.URL,
            export,
            POLICY,
            london(23, 2),
            adapter=SNAPSHOT,
            password_env="SCHOOLS_DB_PASSWORD",
        )
        assert job.store_kind == POSTGRES
        assert job.export == export
        assert pickle.loads(pickle.dumps(job)) == job
        assert len(pickle.dumps(job)) < len(export) + 2048
        text = repr(job)
        assert f"export=<{len(export)} bytes>" in text
        assert "07700" not in text
        assert "Family7" not in text
        assert "password_env='SCHOOLS_DB_PASSWORD'" in text

    def test_two_jobs_on_one_book_of_a_database_are_refused(self) -> None:
        """A book named with ?book= and with a fragment is one book: run_many refuses both jobs."""
        at = london(23, 2)
        one = SchoolJob("a", self.URL, b"", POLICY, at, adapter=SNAPSHOT)
        other = SchoolJob("b", self.URL.replace("?book=", "#"), b"", POLICY, at, adapter=SNAPSHOT)
        with pytest.raises(UsageError, match="one job per book"):
            run_many([one, other])


def zipped(folder: Path) -> bytes:
    """The files of *folder* as the bytes of a zip file."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, file.name)
    return data.getvalue()


class TestCarriedExports:
    """An export carried in the job as bytes: read where the job runs, leaving no file behind."""

    def test_a_carried_bundle_reads_as_its_folder_does(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A zipped OneRoster bundle's bytes give the same result and book as its folder."""
        at = london(23, 2)
        write_bundle(snapshot(1, 1, at), tmp_path / "bundle")
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        carried = nightly(
            SchoolJob("s", tmp_path / "a.sqlite", zipped(tmp_path / "bundle"), POLICY, at)
        )
        from_folder = nightly(
            SchoolJob("s", tmp_path / "b.sqlite", tmp_path / "bundle", POLICY, at)
        )
        assert (carried.status, carried.created) == ("applied", 12)
        assert carried == from_folder
        assert book_bytes(tmp_path / "a.sqlite") == book_bytes(tmp_path / "b.sqlite")
        assert list(scratch.iterdir()) == []  # the school's data is not left on the worker's disk

    def test_an_unreadable_carried_export_names_its_file_only(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The error names export.zip, not the temporary folder, so every run reports the same."""
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        job = SchoolJob("s", tmp_path / "b.sqlite", b"PK\x03\x04 cut short", POLICY, london(23, 2))
        result = nightly(job)
        assert result.error == (
            "s: AdapterError: cannot read the OneRoster bundle at 'export.zip': "
            "not a readable zip file"
        )
        assert list(scratch.iterdir()) == []

    def test_a_carried_snapshot_needs_no_file(self, tmp_path: Path) -> None:
        """A serialised snapshot's bytes are read as they are, as its file would be."""
        at = london(23, 2)
        text = dumps(snapshot(2, 1, at))
        (tmp_path / "s.json").write_text(text, encoding="utf-8")
        carried = nightly(
            SchoolJob("s", tmp_path / "a.sqlite", text.encode(), POLICY, at, adapter=SNAPSHOT)
        )
        from_file = nightly(
            SchoolJob("s", tmp_path / "b.sqlite", tmp_path / "s.json", POLICY, at, adapter=SNAPSHOT)
        )
        assert (carried.status, carried.created) == ("applied", 12)
        assert carried == from_file


class TestOneByOne:
    def test_a_missing_export_fails_that_school_only(self, tmp_path: Path) -> None:
        """A school whose export is missing fails with an error naming it; the next one applies."""
        at = london(23, 2)
        good = tmp_path / "good.json"
        good.write_text(dumps(snapshot(1, 1, at)), encoding="utf-8")
        results = run_many(
            [
                SchoolJob("gone", tmp_path / "gone.sqlite", tmp_path / "nowhere", POLICY, at),
                SchoolJob("good", tmp_path / "good.sqlite", good, POLICY, at, adapter=SNAPSHOT),
            ]
        )
        assert results[0].failed
        assert results[0].error is not None
        assert results[0].error.startswith("gone: ")
        assert results[1].status == "applied"

    def test_a_snapshot_of_another_source_is_refused(self, tmp_path: Path) -> None:
        """A snapshot not of the job's source fails that school with a UsageError naming both."""
        at = london(23, 2)
        file = tmp_path / "s.json"
        file.write_text(dumps(snapshot(1, 1, at)), encoding="utf-8")
        job = SchoolJob(
            "s", tmp_path / "b.sqlite", file, POLICY, at, adapter=SNAPSHOT, source="import"
        )
        result = nightly(job)
        assert result.failed
        assert result.error == "s: UsageError: the snapshot is of source 'mis', not 'import'"

    def test_an_adapters_bug_is_a_failed_result_without_its_message(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An unexpected exception is kept by type only (its message may hold anything)."""

        class Buggy:
            def __init__(self, path: str, *, source: str) -> None:
                pass

            def read(self, *, extracted_at: datetime) -> None:
                raise KeyError("Gita Shah")

        registry.register("source", "buggy", Buggy)
        try:
            job = SchoolJob(
                "s", tmp_path / "b.sqlite", tmp_path, POLICY, london(23, 2), adapter="buggy"
            )
            result = nightly(job)
        finally:
            registry.unregister("source", "buggy")
        assert result.failed
        assert result.error is not None
        assert "Gita" not in result.error
        assert "unexpected KeyError" in result.error
        assert "nightly sync of s failed" in caplog.text


def test_import_sourcetruth_never_imports_dask() -> None:
    """Neither `import sourcetruth` nor `import sourcetruth.app.distributed` imports Dask."""
    code = (
        "import json, sys\nimport sourcetruth, sourcetruth.app.distributed\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout)
    assert "sourcetruth.app.distributed" in modules
    assert [m for m in modules if m.split(".")[0] in {"dask", "distributed"}] == []
