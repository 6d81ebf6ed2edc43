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
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from school import london
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
    UsageError,
)
from sourcetruth.app.bookfolder import BookFolder
from sourcetruth.cli import main
from sourcetruth.messages import DeliveryStatus

AT = london(23, 9)
BY = "office"
TOKEN = "tok-5b7e2c9d"

MIS_ONLY = (
    '[sources.mis]\nkind = "mis"\nadapter = "oneroster"\n'
    'covers = ["given_name", "family_name", "role", "phones", "emails", "relationships",'
    ' "year_group"]\n'
)


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


class Recorder:
    """A real HTTP server on 127.0.0.1 that accepts every POST and keeps its headers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                recorder.seen.append(dict(self.headers.items()))
                answer = json.dumps({"id": "gw-1", "status": "accepted"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """A loopback server as every HTTP request's proxy: what would have left, it catches."""
    running = Recorder()
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", running.url)
    yield running
    running.close()


def sms_gateway(url: str, extra: str = "") -> str:
    """Settings sending SMS to the gateway at *url*, its token from SCHOOL_SMS_TOKEN."""
    return (
        MIS_ONLY
        + f'[transports.sms]\nadapter = "sms-http"\nurl = "{url}"\nsender = "School"\n'
        + f'token_env = "SCHOOL_SMS_TOKEN"\n{extra}'
    )


class TestCredentialsInClear:
    def test_a_send_to_a_plain_http_gateway_elsewhere_sends_nothing(
        self, tmp_path: Path, proxy: Recorder
    ) -> None:
        """F4: an http:// gateway off this machine in policy.toml: the send is refused, unsent."""
        settings = sms_gateway("http://sms.example.org/send")
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
        self, tmp_path: Path, proxy: Recorder
    ) -> None:
        """F4: allow_insecure = true in the transport's table accepts the risk; the texts go."""
        settings = sms_gateway("http://sms.example.org/send", "allow_insecure = true\n")
        environ = {"SCHOOL_SMS_TOKEN": TOKEN}
        with make(tmp_path / "book", settings, environ=environ) as folder:
            sent = folder.send_message(to_governors("m1", (Channel.SMS,)), sent_at=AT)
        assert sent.record.count(DeliveryStatus.ACCEPTED) == 2
        assert [h["Authorization"] for h in proxy.seen] == [f"Bearer {TOKEN}"] * 2


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
