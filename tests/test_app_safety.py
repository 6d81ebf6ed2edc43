"""Safe under attack and accident: the findings of an adversarial test, each kept fixed.

Each test names its finding (``F4: ...``). The threats: a hostile file or
link planted in the book folder, a careless operator (plain ``http://``, a
mapping path outside the folder), and ``kill -9`` in the middle of a write.
Every test works on real files in ``tmp_path``; a server is a real one on
127.0.0.1. docs/security.md lists what these tests keep.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from school import ROOT, full, london, school
from sourcetruth import (
    AddressBookSave,
    Channel,
    ContactData,
    Email,
    Message,
    Phone,
    Role,
    SendMode,
    SourceDataError,
    SourceTruthError,
    UsageError,
)
from sourcetruth.adapters.sources.oneroster import write_bundle
from sourcetruth.adapters.stores.jsonstore import JsonStore
from sourcetruth.app.bookfolder import BookFolder
from sourcetruth.app.sending import FileDeliveryLog
from sourcetruth.cli import main
from sourcetruth.messages import DeliveryStatus
from test_bookfolder import MIS_ONLY, OUTBOX_ELSEWHERE, Gateway, sms_settings

AT = london(23, 9)
BY = "office"
TOKEN = "tok-5b7e2c9d"


def governor(key: str, given: str, number: str, email: str) -> AddressBookSave:
    """An address-book governor with a mobile number and an email."""
    data = ContactData(
        given, "Governor", Role.GOVERNOR, phones=(Phone(number),), emails=(Email(email),)
    )
    return AddressBookSave(f"address-book:{key}", data)


LARS = governor("la", "Lars", "07700 900401", "lars@governors.test")
MO = governor("mo", "Mo", "07700 900402", "mo@governors.test")


def make(path: Path, settings: str = MIS_ONLY, **kwargs: Any) -> BookFolder:
    """A new book folder with the two governors in its address book."""
    kwargs.setdefault("environ", {})
    folder = BookFolder.create(path, settings=settings, **kwargs)
    folder.apply([LARS, MO], at=AT, by=BY)
    return folder


def to_governors(message_id: str, channels: tuple[Channel, ...]) -> Message:
    """A message to both governors on *channels*."""
    return Message(
        message_id,
        "Minutes",
        "The minutes are attached.",
        channels=channels,
        mode=SendMode.EACH,
        contacts=(LARS.contact_id, MO.contact_id),
    )


# --------------------------------------------------------------------------
# F4: credentials in clear


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    """A loopback gateway as every HTTP request's proxy: what would have left, it catches."""
    running = Gateway()
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", running.url.removesuffix("/send"))
    yield running
    running.close()


class TestCredentialsInClear:
    def test_a_send_to_a_plain_http_gateway_elsewhere_sends_nothing(
        self, tmp_path: Path, proxy: Gateway
    ) -> None:
        """F4: an http:// gateway off this machine in policy.toml: the send is refused, unsent."""
        settings = sms_settings("http://sms.example.org/send")
        environ = {"SCHOOL_SMS_TOKEN": TOKEN}
        with (
            make(tmp_path / "book", settings, environ=environ) as folder,
            pytest.raises(UsageError) as caught,
        ):
            folder.send_message(to_governors("m1", (Channel.SMS,)), sent_at=AT)
        assert "allow_insecure" in str(caught.value)
        assert TOKEN not in str(caught.value)
        assert proxy.seen == []

    def test_allow_insecure_in_the_settings_lets_it_go(
        self, tmp_path: Path, proxy: Gateway
    ) -> None:
        """F4: allow_insecure = true in the transport's table accepts the risk; the texts go."""
        settings = sms_settings("http://sms.example.org/send", "allow_insecure = true\n")
        environ = {"SCHOOL_SMS_TOKEN": TOKEN}
        with make(tmp_path / "book", settings, environ=environ) as folder:
            sent = folder.send_message(to_governors("m1", (Channel.SMS,)), sent_at=AT)
        assert sent.record.count(DeliveryStatus.ACCEPTED) == 2
        assert [h["Authorization"] for h, _ in proxy.seen] == [f"Bearer {TOKEN}"] * 2


# --------------------------------------------------------------------------
# F17: paths in policy.toml stay in the book folder


class TestPathsStayInTheFolder:
    def test_an_outbox_folder_from_a_variable_is_refused_outside(self, tmp_path: Path) -> None:
        """F17: an outbox folder named by a variable (folder_env) must be in the book folder too."""
        settings = MIS_ONLY + '[transports.sms]\nadapter = "outbox"\nfolder_env = "HELD"\n'
        elsewhere = tmp_path / "elsewhere"
        environ = {"HELD": str(elsewhere)}
        with (
            make(tmp_path / "book", settings, environ=environ) as folder,
            pytest.raises(SourceDataError) as caught,
        ):
            folder.send_message(to_governors("m1", (Channel.SMS,)), sent_at=AT)
        assert caught.value.field == "transports.sms.folder"
        assert str(elsewhere) not in str(caught.value)
        assert not elsewhere.exists()


# --------------------------------------------------------------------------
# The command, for sessions as an operator runs them


class Command:
    """The command on one book folder, with the environment a test gives it."""

    def __init__(self, folder: Path, environ: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.environ = {"SOURCETRUTH_USER": BY, **(environ or {})}

    def __call__(self, *args: str) -> str:
        """Run the command; it must succeed. Its standard output."""
        out, err = io.StringIO(), io.StringIO()
        argv = ["--book", os.fspath(self.folder), *args]
        code = main(argv, out=out, err=err, environ=self.environ)
        assert code == 0, (args, err.getvalue())
        return out.getvalue()


def add_governors(run: Command) -> None:
    """The two governors, added to the address book as an operator would."""
    for key, given, mobile, email in (
        ("la", "Lars", "07700 900401", "lars@governors.test"),
        ("mo", "Mo", "07700 900402", "mo@governors.test"),
    ):
        run(
            "address-book", "add", "--key", key, "--given", given, "--family", "Governor",
            "--role", "governor", "--mobile", mobile, "--email", email,
            "--at", "2026-11-23T09:00",
        )  # fmt: skip


GOVERNORS = ("address-book:la", "address-book:mo")


# --------------------------------------------------------------------------
# F18: the audit's time is the command's time


class TestSentAt:
    def test_two_runs_at_the_same_time_give_the_same_bytes(self, tmp_path: Path) -> None:
        """F18: two sends with the same --at give byte-identical audit records and --json."""
        folder = tmp_path / "book"
        runs: list[tuple[bytes, str]] = []
        for _ in range(2):
            shutil.rmtree(folder, ignore_errors=True)
            run = Command(folder)
            run("init")
            add_governors(run)
            shown = run(
                "send", *GOVERNORS, "--id", "minutes", "--body", "The minutes are attached.",
                "--deliver", "--json", "--at", "2026-11-23T10:00",
            )  # fmt: skip
            runs.append(((folder / "audit" / "minutes.json").read_bytes(), shown))
        assert runs[0] == runs[1]
        sent_at = json.loads(runs[0][1])["audit"]["sent_at"]
        assert sent_at == "2026-11-23T10:00:00+00:00"


# --------------------------------------------------------------------------
# F16: private modes, and no write through a planted link


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a plain open() or mkdir() makes what anyone can read."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    """Every folder and file under *folder* (itself included, dotfiles too) and its mode."""
    found = {".": stat.S_IMODE(folder.lstat().st_mode)}
    for path in sorted(folder.rglob("*")):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def session(tmp_path: Path, store: str) -> Path:
    """A realistic session: init, sync, address-book add, send, export, erase. The folder."""
    folder = tmp_path / "schools" / "book"
    bundle = tmp_path / "exports" / "mis"
    write_bundle(full(london(23, 1), school()), bundle)
    run = Command(folder)
    run("init", "--store", store)
    run("sync", "mis", os.fspath(bundle), "--at", "2026-11-23T02:00",
        "--extracted-at", "2026-11-23T01:00")  # fmt: skip
    add_governors(run)
    run("send", *GOVERNORS, "mis:G9", "--id", "minutes", "--body", "The minutes.",
        "--deliver", "--at", "2026-11-23T10:00")  # fmt: skip
    run("export", os.fspath(folder / "export.csv"), "--at", "2026-11-23T10:00")
    run("address-book", "export", os.fspath(folder / "governors.vcf"))
    run("erase", "address-book:la", "--yes", "--at", "2026-11-23T11:00")
    return folder


@pytest.mark.usefixtures("umask_022")
class TestPrivateModes:
    @pytest.mark.parametrize("store", ["sqlite", "json"])
    def test_after_a_session_every_folder_is_0700_and_every_file_0600(
        self, tmp_path: Path, store: str
    ) -> None:
        """F16: init, sync, add, send, export, erase under umask 022: folders 0700, files 0600."""
        folder = session(tmp_path, store)
        found = modes(folder)
        assert {"outbox", "audit", "deliveries.jsonl", "export.csv"} <= set(found)
        if store == "json":
            assert "book.json.lock" in found
        wrong = {
            name: oct(mode)
            for name, mode in found.items()
            if mode != (0o700 if (folder / name).is_dir() else 0o600)
        }
        assert wrong == {}
        assert stat.S_IMODE((tmp_path / "schools").stat().st_mode) == 0o700  # made by init too

    def test_an_outbox_the_settings_place_is_made_0700_all_the_way(self, tmp_path: Path) -> None:
        """F16: an outbox folder set in policy.toml, and each folder made above it, is 0700."""
        with make(tmp_path / "book", OUTBOX_ELSEWHERE) as folder:
            folder.send_message(to_governors("m1", (Channel.SMS,)), sent_at=AT)
        found = modes(tmp_path / "book")
        assert found["held"] == found["held/sms"] == 0o700
        assert {found[f"held/sms/{p.name}"] for p in (tmp_path / "book/held/sms").iterdir()} == {
            0o600
        }

    def test_an_old_lock_file_readable_by_all_is_made_private(self, tmp_path: Path) -> None:
        """F16: a book.json.lock an earlier version left 0644 is 0600 after the next commit."""
        with make(tmp_path / "book", store="json") as folder:
            lock = folder.path / "book.json.lock"
            lock.chmod(0o644)
            folder.apply(to_the_office(), at=london(23, 10), by=BY)
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def to_the_office() -> AddressBookSave:
    """One more address-book contact: a change to commit."""
    return governor("of", "Olu", "07700 900409", "office@governors.test")


VICTIM = b"the victim's own bytes\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the book folder that a planted link points at."""
    path = tmp_path / "victim.txt"
    path.write_bytes(VICTIM)
    path.chmod(0o644)
    return path


def untouched(victim: Path) -> bool:
    """Whether *victim* has its own bytes and mode still."""
    return victim.read_bytes() == VICTIM and stat.S_IMODE(victim.stat().st_mode) == 0o644


class TestPlantedLinks:
    """F16: a link planted where the library writes never carries a write to its target."""

    def test_the_json_stores_lock_file(self, tmp_path: Path, victim: Path) -> None:
        """F16: a link at book.json.lock is refused with a typed error; its target is unchanged."""
        with make(tmp_path / "book", store="json") as folder:
            lock = folder.path / "book.json.lock"
            lock.unlink()
            lock.symlink_to(victim)
            with pytest.raises(SourceTruthError):
                folder.apply(to_the_office(), at=london(23, 10), by=BY)
        assert untouched(victim)

    def test_a_lock_file_link_to_nowhere_makes_nothing(self, tmp_path: Path) -> None:
        """F16: a link at book.json.lock to a missing file does not create that file."""
        target = tmp_path / "made-by-the-library"
        (tmp_path / "book.json.lock").symlink_to(target)
        with pytest.raises(SourceTruthError):
            JsonStore(tmp_path / "book.json").commit(*_first_commit())
        assert not target.exists()

    def test_the_delivery_log(self, tmp_path: Path, victim: Path) -> None:
        """F16: a link at deliveries.jsonl: the send is refused (typed) and nothing is appended."""
        with make(tmp_path / "book") as folder:
            (folder.path / "deliveries.jsonl").symlink_to(victim)
            with pytest.raises(SourceTruthError):
                folder.send_message(to_governors("m1", (Channel.EMAIL,)), sent_at=AT)
        assert untouched(victim)
        assert not (tmp_path / "book" / "outbox").exists()  # nothing was handed over

    def test_the_delivery_log_read_and_rewritten(self, tmp_path: Path, victim: Path) -> None:
        """F16: reading or rewriting (forget) a linked delivery log is refused, the target kept."""
        (tmp_path / "deliveries.jsonl").symlink_to(victim)
        log = FileDeliveryLog(tmp_path / "deliveries.jsonl")
        with pytest.raises(SourceTruthError):
            log.results()
        with pytest.raises(SourceTruthError):
            log.forget(["k-1"])
        assert untouched(victim)

    def test_an_audit_file(self, tmp_path: Path, victim: Path) -> None:
        """F16: a link at the audit file a send is about to write is refused, the target kept."""
        with make(tmp_path / "book") as folder:
            (folder.path / "audit").mkdir(mode=0o700)
            (folder.path / "audit" / "m1.json").symlink_to(victim)
            with pytest.raises(SourceTruthError):
                folder.send_message(to_governors("m1", (Channel.EMAIL,)), sent_at=AT)
        assert untouched(victim)

    @pytest.mark.parametrize("name", ["audit", "outbox", "outbox/email"])
    def test_a_folder_of_the_books(self, tmp_path: Path, name: str) -> None:
        """F16: a link in place of audit/ or an outbox folder is refused; nothing lands there."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        with make(tmp_path / "book") as folder:
            (folder.path / name).parent.mkdir(exist_ok=True)
            (folder.path / name).symlink_to(elsewhere, target_is_directory=True)
            with pytest.raises(SourceTruthError):
                folder.send_message(to_governors("m1", (Channel.EMAIL,)), sent_at=AT)
        assert list(elsewhere.iterdir()) == []

    def test_an_outbox_copy(self, tmp_path: Path, victim: Path) -> None:
        """F16: a link at an outbox copy's name is replaced by the copy, never written through."""
        with make(tmp_path / "book") as folder:
            planned = folder.send_message(to_governors("m0", (Channel.EMAIL,)), sent_at=AT)
            keys = [o.delivery.key for o in planned.record.outcomes]
            shutil.rmtree(folder.path / "audit")
            (folder.path / "deliveries.jsonl").unlink()
            for key in keys:
                (folder.path / "outbox" / "email" / f"{key}.json").unlink()
                (folder.path / "outbox" / "email" / f"{key}.json").symlink_to(victim)
            folder.send_message(to_governors("m0", (Channel.EMAIL,)), sent_at=AT)
            copies = list((folder.path / "outbox" / "email").iterdir())
        assert untouched(victim)
        assert all(not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) == 0o600 for p in copies)

    def test_the_settings_store_and_key_at_init(self, tmp_path: Path) -> None:
        """F16: links to nowhere at policy.toml, the store or the key: init refuses, typed."""
        for name in ("policy.toml", "book.sqlite", "suppression.key"):
            folder = tmp_path / name
            folder.mkdir()
            target = tmp_path / f"made-for-{name}"
            (folder / name).symlink_to(target)
            with pytest.raises(SourceTruthError):
                BookFolder.create(folder, settings=MIS_ONLY, environ={})
            assert not target.exists(), name

    def test_an_export(self, tmp_path: Path, victim: Path) -> None:
        """F16: export --force over a link replaces the link, never the file it points at."""
        folder = tmp_path / "book"
        run = Command(folder)
        run("init")
        add_governors(run)
        (tmp_path / "export.csv").symlink_to(victim)
        run("export", os.fspath(tmp_path / "export.csv"), "--force", "--at", "2026-11-23T10:00")
        assert untouched(victim)
        assert b"Lars" in (tmp_path / "export.csv").read_bytes()


def _first_commit() -> tuple[Any, Any, Any]:
    """What a first commit of one address-book contact hands a store: before, result, run."""
    from school import mis_policy
    from sourcetruth import Book, merge
    from sourcetruth.journal import run_of

    change = to_the_office()
    result = merge(Book(), change, policy=mis_policy(), at=AT, by=BY)
    return Book(), result, run_of(Book(), [change], result.report, at=AT, by=BY)


# --------------------------------------------------------------------------
# F5: what a killed write leaves, and erasure

CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}

#: A child that opens the book folder and kills itself (SIGKILL) at its first
#: fsync: the moment a file's new bytes are whole in a temporary, before the rename.
KILLED_MID_WRITE = """
import os, signal, sys
from school import london
from sourcetruth import Channel, Message, SendMode
from sourcetruth.app.bookfolder import BookFolder
from test_app_safety import BY, GOVERNORS, to_governors, to_the_office

folder = BookFolder.open(sys.argv[1], environ={})
folder.load()
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[2] == "commit":
    folder.apply(to_the_office(), at=london(23, 10), by=BY)
else:
    folder.send_message(to_governors("m1", (Channel.SMS, Channel.EMAIL)), sent_at=london(23, 10))
"""

#: Each thing the book knows of Lars: bytes no file of the folder may hold after his erasure.
LARS_BYTES = (b"Lars", b"900401", b"lars@governors")


def everything(folder: Path) -> dict[str, bytes]:
    """Every file under *folder*, dotfiles and leftovers included, by name."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


class TestKilledThenErased:
    @pytest.mark.parametrize(
        ("store", "killed"), [("json", "commit"), ("json", "send"), ("sqlite", "send")]
    )
    def test_no_byte_of_the_person_is_left_anywhere(
        self, tmp_path: Path, store: str, killed: str
    ) -> None:
        """F5: a child killed mid-write (commit or audit), then open and erase: no byte of them."""
        with make(tmp_path / "book", store=store) as folder:
            path = folder.path
        child = subprocess.run(
            [sys.executable, "-c", KILLED_MID_WRITE, str(path), killed],
            env=CHILD_ENV,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr
        left = [name for name in everything(path) if name.endswith(".tmp")]
        assert len(left) == 1  # the killed write's copy, holding Lars: so the check can fail
        assert b"Lars" in (path / left[0]).read_bytes()
        with BookFolder.open(path, environ={}) as folder:
            folder.erase(LARS.contact_id, at=london(23, 11), by="dpo")
        for name, data in everything(path).items():
            for value in LARS_BYTES:
                assert value not in data, (name, value)

    def test_opening_the_folder_removes_a_killed_sends_copy(self, tmp_path: Path) -> None:
        """F5: the book folder removes its own leftovers (audit, outbox, log) when it opens."""
        with make(tmp_path / "book") as folder:
            path = folder.path
        subprocess.run(
            [sys.executable, "-c", KILLED_MID_WRITE, str(path), "send"],
            env=CHILD_ENV,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert [n for n in everything(path) if n.endswith(".tmp")] != []
        BookFolder.open(path, environ={}).close()
        assert [n for n in everything(path) if n.endswith(".tmp")] == []
