"""The book folder: creating and opening one, its key, batches, adapters, transports, audits.

Every test works on real files in ``tmp_path``; the SMS gateway is a real
HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import budget
from school import full, guardian, london, pupil, school, staff
from sourcetruth import (
    AddressBookRemove,
    AddressBookSave,
    Book,
    Channel,
    ContactData,
    Email,
    Erase,
    Message,
    Phone,
    Role,
    SendMode,
    SourceDataError,
    Status,
    UsageError,
    contact_at,
    plan,
    send,
)
from sourcetruth.adapters.sources.oneroster import OneRosterAdapter, write_bundle
from sourcetruth.adapters.sources.sds import SdsAdapter
from sourcetruth.adapters.sources.tabular import CsvImportAdapter
from sourcetruth.adapters.stores.jsonstore import JsonStore
from sourcetruth.adapters.stores.sqlite import SqliteStore
from sourcetruth.adapters.transports.outbox import OutboxTransport
from sourcetruth.adapters.transports.sms import HttpSmsTransport
from sourcetruth.adapters.transports.smtp import SmtpTransport
from sourcetruth.app.bookfolder import KEY_FILE_VARIABLE, BookFolder, combine_reports
from sourcetruth.app.settings import STARTER
from sourcetruth.audit import AuditRecord
from sourcetruth.changes import SetOverride
from sourcetruth.exceptions import AdapterError, SourceTruthError, UnknownContactError
from sourcetruth.journal import input_hash
from sourcetruth.merge import Change, merge
from sourcetruth.messages import DeliveryStatus, Envelope
from sourcetruth.model import EndedOverride, Override, SnapshotKind
from sourcetruth.report import FieldChange, Held, PossibleDuplicate, Report, Unnormalised

AT = london(23, 9)
LATER = london(23, 10)
BY = "office"

MIS_ONLY = (
    '[sources.mis]\nkind = "mis"\nadapter = "oneroster"\n'
    'covers = ["given_name", "family_name", "role", "phones", "emails", "relationships",'
    ' "year_group"]\n'
)
WITH_MAPPING = STARTER.replace('# mapping = "mapping.toml"', 'mapping = "mapping.toml"')
MAPPING = """\
key = "Id"
given_name = "First name"
family_name = "Last name"
phones = [{ column = "Mobile", type = "mobile" }]
emails = [{ column = "Email" }]
"""
CSV = (
    "Id,First name,Last name,Mobile,Email\r\n"
    "I1,Ada,Lovelace,07700 900301,ada@parent.test\r\n"
    "I2,Bo,Brown,01632 960302,bo@example.org\r\n"
)


def make(path: Path, settings: str = STARTER, **kwargs: Any) -> BookFolder:
    kwargs.setdefault("environ", {})
    return BookFolder.create(path, settings=settings, **kwargs)


@pytest.fixture
def book(tmp_path: Path) -> Iterator[BookFolder]:
    folder = make(tmp_path / "book")
    yield folder
    folder.close()


def save(key: str, given: str, number: str, email: str) -> AddressBookSave:
    data = ContactData(
        given, "Governor", Role.GOVERNOR, phones=(Phone(number),), emails=(Email(email),)
    )
    return AddressBookSave(f"address-book:{key}", data)


SAVES = (
    save("la", "Lars", "07700 900401", "lars@governors.test"),
    save("mo", "Mo", "07700 900402", "mo@governors.test"),
    save("ny", "Nye", "01632 960403", "nye@example.org"),
)


def files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------
# Creating and opening


class TestCreate:
    def test_a_new_folder_holds_the_settings_and_an_empty_sqlite_book(self, tmp_path: Path) -> None:
        """A new folder, parents made too, holds the settings as given and an empty SQLite book."""
        path = tmp_path / "schools" / "st-olaf"
        with make(path) as folder:
            assert folder.path == path
            assert (path / "policy.toml").read_text(encoding="utf-8") == STARTER
            assert (path / "book.sqlite").is_file()
            assert not (path / "book.json").exists()
            assert isinstance(folder.store, SqliteStore)
            assert folder.load() == Book()
            assert folder.journal() == ()

    def test_the_key_is_secret_random_and_owner_only(self, tmp_path: Path) -> None:
        """Each new folder gets its own 64-hex-digit key, mode 0600, which its policy uses."""
        first, second = make(tmp_path / "a"), make(tmp_path / "b")
        key = tmp_path / "a" / "suppression.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        text = key.read_text(encoding="ascii").strip()
        assert len(text) == 64
        int(text, 16)
        assert text != (tmp_path / "b" / "suppression.key").read_text(encoding="ascii").strip()
        assert first.policy.suppression_key == text
        assert second.policy.suppression_key != text

    def test_the_key_is_owner_only_whatever_the_umask(self, tmp_path: Path) -> None:
        """The suppression key is mode 0600 even under a umask of 0."""
        old = os.umask(0)
        try:
            make(tmp_path / "book")
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / "book" / "suppression.key").stat().st_mode) == 0o600

    def test_a_json_store_on_request(self, tmp_path: Path) -> None:
        """store='json' makes an empty book.json store and no SQLite file."""
        with make(tmp_path / "book", store="json") as folder:
            assert (tmp_path / "book" / "book.json").is_file()
            assert not (tmp_path / "book" / "book.sqlite").exists()
            assert isinstance(folder.store, JsonStore)
            assert folder.load() == Book()
            assert folder.journal() == ()

    def test_an_unknown_store_writes_nothing(self, tmp_path: Path) -> None:
        """An unknown store is a UsageError naming sqlite, and no folder is made."""
        with pytest.raises(UsageError, match="sqlite"):
            make(tmp_path / "book", store="postgres")
        assert not (tmp_path / "book").exists()

    def test_the_settings_given_are_written_as_given(self, tmp_path: Path) -> None:
        """The settings given are written byte for byte and become the folder's policy."""
        with make(tmp_path / "book", MIS_ONLY) as folder:
            assert (tmp_path / "book" / "policy.toml").read_text(encoding="utf-8") == MIS_ONLY
            assert [s.name for s in folder.policy.sources] == ["mis"]

    def test_an_empty_existing_folder_may_become_a_book(self, tmp_path: Path) -> None:
        """An existing empty folder can be made into a book."""
        (tmp_path / "book").mkdir()
        make(tmp_path / "book").close()
        assert (tmp_path / "book" / "policy.toml").is_file()

    @pytest.mark.parametrize("store", ["sqlite", "json"])
    def test_a_folder_that_holds_a_book_is_refused_and_left_alone(
        self, tmp_path: Path, store: str
    ) -> None:
        """create() over an existing book is refused, whichever the stores, and no byte changes."""
        path = tmp_path / "book"
        with make(path, store=store) as folder:
            folder.apply(SAVES[0], at=AT, by=BY)
        before = files(path)
        for other in ("sqlite", "json"):
            with pytest.raises(UsageError, match="already holds a book"):
                make(path, MIS_ONLY, store=other)
        assert files(path) == before

    @pytest.mark.parametrize("leftover", ["policy.toml", "book.sqlite", "book.json"])
    def test_any_part_of_a_book_is_enough_to_refuse(self, tmp_path: Path, leftover: str) -> None:
        """The settings or either store alone makes create() refuse, and that file is kept as is."""
        path = tmp_path / "book"
        path.mkdir()
        (path / leftover).write_text("kept", encoding="utf-8")
        with pytest.raises(UsageError):
            make(path)
        assert [p.name for p in path.iterdir()] == [leftover]
        assert (path / leftover).read_text(encoding="utf-8") == "kept"

    def test_bad_settings_write_nothing(self, tmp_path: Path) -> None:
        """Bad settings are an error on policy.toml's key; neither folder nor key file is made."""
        key = tmp_path / "keys" / "school.key"
        (tmp_path / "keys").mkdir()
        with pytest.raises(SourceDataError) as caught:
            make(
                tmp_path / "book",
                '[sources.mis]\nkind = "school"\n',
                environ={KEY_FILE_VARIABLE: str(key)},
            )
        assert caught.value.file == "policy.toml"
        assert caught.value.field == "sources.mis.kind"
        assert not (tmp_path / "book").exists()
        assert not key.exists()

    def test_bad_settings_leave_an_existing_folder_empty(self, tmp_path: Path) -> None:
        """Settings that are not valid TOML leave an existing empty folder empty."""
        (tmp_path / "book").mkdir()
        with pytest.raises(SourceDataError):
            make(tmp_path / "book", "not = [toml")
        assert list((tmp_path / "book").iterdir()) == []

    def test_a_file_in_the_way_is_a_usage_error(self, tmp_path: Path) -> None:
        """A file where the folder should be is a UsageError, and the file is left alone."""
        (tmp_path / "book").write_text("a file", encoding="utf-8")
        with pytest.raises(UsageError, match="not a folder"):
            make(tmp_path / "book")
        assert (tmp_path / "book").read_text(encoding="utf-8") == "a file"


class TestOpen:
    def test_open_finds_what_create_made(self, tmp_path: Path) -> None:
        """open() finds the book, key, settings and timezone create() made; repr shows the path."""
        with make(tmp_path / "book") as made:
            made.apply(SAVES[0], at=AT, by=BY)
            key = made.policy.suppression_key
        with BookFolder.open(tmp_path / "book", environ={}) as folder:
            assert "address-book:la" in folder.load().contacts
            assert folder.policy.suppression_key == key
            assert folder.settings.policy.precedence == ("mis", "import")
            assert folder.timezone.key == "Europe/London"
            assert repr(folder) == f"BookFolder({str(tmp_path / 'book')!r})"

    def test_a_folder_without_settings_is_not_a_book(self, tmp_path: Path) -> None:
        """A folder with a store but no policy.toml is not a book: open() names the missing file."""
        (tmp_path / "book").mkdir()
        (tmp_path / "book" / "book.sqlite").write_bytes(b"")
        with pytest.raises(UsageError, match=r"policy\.toml"):
            BookFolder.open(tmp_path / "book", environ={})

    def test_a_missing_folder_is_not_a_book(self, tmp_path: Path) -> None:
        """A folder that does not exist is a UsageError saying so, never advising init there."""
        with pytest.raises(UsageError, match="does not exist") as caught:
            BookFolder.open(tmp_path / "nowhere", environ={})
        assert "init" not in str(caught.value)
        assert "did you mean" not in str(caught.value)

    def test_a_mistyped_folder_suggests_the_book_beside_it(self, tmp_path: Path) -> None:
        """A typo of a book folder's name offers the nearest book folder beside it, only books."""
        make(tmp_path / "school-book").close()
        (tmp_path / "school-books").mkdir()  # as near, but no book
        with pytest.raises(UsageError) as caught:
            BookFolder.open(tmp_path / "school-bok", environ={})
        assert str(caught.value) == (
            f"the book folder {tmp_path / 'school-bok'} does not exist; "
            f"did you mean {tmp_path / 'school-book'}?"
        )
        assert not (tmp_path / "school-bok").exists()

    def test_an_empty_folder_is_told_how_to_make_a_book(self, tmp_path: Path) -> None:
        """A folder that exists but holds no book is told the init that makes one there."""
        (tmp_path / "new book").mkdir()
        with pytest.raises(UsageError) as caught:
            BookFolder.open(tmp_path / "new book", environ={})
        assert "holds no book (no policy.toml)" in str(caught.value)
        assert f"run 'sourcetruth --book '{tmp_path / 'new book'}' init'" in str(caught.value)
        (tmp_path / "file").write_text("", encoding="utf-8")
        with pytest.raises(UsageError, match="is a file, not a book folder"):
            BookFolder.open(tmp_path / "file", environ={})

    def test_settings_broken_after_create_name_the_file_and_key(self, tmp_path: Path) -> None:
        """Settings broken after create fail when read, naming the file and key, not the value."""
        make(tmp_path / "book").close()
        (tmp_path / "book" / "policy.toml").write_text(
            '[sources.mis]\nkind = "mis"\nschedule = "07700 900123"\n', encoding="utf-8"
        )
        folder = BookFolder.open(tmp_path / "book", environ={})
        with pytest.raises(SourceDataError) as caught:
            _ = folder.policy
        assert caught.value.file == str(tmp_path / "book" / "policy.toml")
        assert caught.value.field == "sources.mis.schedule"
        assert "900123" not in str(caught.value)

    def test_a_folder_with_two_stores_is_refused(self, tmp_path: Path) -> None:
        """A folder holding both an SQLite and a JSON store is refused when the book is loaded."""
        make(tmp_path / "book").close()
        (tmp_path / "book" / "book.json").write_text('{"book": null, "journal": []}')
        with pytest.raises(AdapterError, match="exactly one"):
            BookFolder.open(tmp_path / "book", environ={}).load()


class TestSuppressionKey:
    def test_the_variable_moves_the_key_out_of_the_folder(self, tmp_path: Path) -> None:
        """The key-file variable puts the key outside the folder, and the folder then needs it.

        The key file there is 0600 and none is made in the folder; opened
        without the variable, the folder's policy cannot be read.
        """
        (tmp_path / "vault").mkdir()
        key = tmp_path / "vault" / "school.key"
        environ = {KEY_FILE_VARIABLE: str(key)}
        with make(tmp_path / "book", environ=environ) as folder:
            assert not (tmp_path / "book" / "suppression.key").exists()
            assert stat.S_IMODE(key.stat().st_mode) == 0o600
            assert folder.policy.suppression_key == key.read_text(encoding="ascii").strip()
        with BookFolder.open(tmp_path / "book", environ=environ) as folder:
            assert folder.policy.suppression_key == key.read_text(encoding="ascii").strip()
        # A copy of the folder without the variable cannot tell whose records were erased.
        with pytest.raises(AdapterError, match=KEY_FILE_VARIABLE):
            _ = BookFolder.open(tmp_path / "book", environ={}).policy

    def test_an_existing_key_at_the_variable_is_kept(self, tmp_path: Path) -> None:
        """A key file already at the variable's path is used as it is, not replaced."""
        key = tmp_path / "shared.key"
        key.write_text("f" * 64 + "\n", encoding="ascii")
        with make(tmp_path / "book", environ={KEY_FILE_VARIABLE: str(key)}) as folder:
            assert folder.policy.suppression_key == "f" * 64
        assert key.read_text(encoding="ascii") == "f" * 64 + "\n"

    def test_an_empty_variable_means_the_folders_key(self, tmp_path: Path) -> None:
        """An empty key-file variable counts as unset: the key goes in the folder."""
        with make(tmp_path / "book", environ={KEY_FILE_VARIABLE: ""}):
            assert (tmp_path / "book" / "suppression.key").is_file()

    def test_a_missing_key_says_how_to_find_it(self, book: BookFolder) -> None:
        """A missing key is an AdapterError naming the key's path and the variable that moves it."""
        (book.path / "suppression.key").unlink()
        with pytest.raises(AdapterError) as caught:
            _ = book.policy
        message = str(caught.value)
        assert "suppression key" in message
        assert str(book.path / "suppression.key") in message
        assert KEY_FILE_VARIABLE in message

    @pytest.mark.parametrize("content", ["", "\n", "   \n\n"])
    def test_an_empty_key_is_refused(self, book: BookFolder, content: str) -> None:
        """A key file that is empty or only whitespace is refused as empty."""
        (book.path / "suppression.key").write_text(content, encoding="ascii")
        with pytest.raises(AdapterError, match="empty"):
            _ = book.policy

    def test_a_key_that_is_not_text_is_refused(self, book: BookFolder) -> None:
        """A key file that is not text is an AdapterError about the suppression key."""
        (book.path / "suppression.key").write_bytes(b"\xff\xfe")
        with pytest.raises(AdapterError, match="suppression key"):
            _ = book.policy

    def test_changes_need_the_key_and_write_nothing_without_it(self, book: BookFolder) -> None:
        """Without its key a folder applies no change: the book and the journal stay empty."""
        (book.path / "suppression.key").unlink()
        with pytest.raises(AdapterError):
            book.apply(SAVES[0], at=AT, by=BY)
        assert book.load() == Book()
        assert book.journal() == ()


# --------------------------------------------------------------------------
# Applying changes


STORES = ["sqlite", "json"]


@pytest.mark.parametrize("store", STORES)
class TestApply:
    def test_one_change_is_one_run(self, tmp_path: Path, store: str) -> None:
        """In either store one change is one run: its hash, id, author, time and report."""
        with make(tmp_path / "book", store=store) as folder:
            result = folder.apply(SAVES[0], at=AT, by=BY)
            assert result.report.status is Status.APPLIED
            assert result.report.created == ("address-book:la",)
            assert result.report.change == "address-book-save"
            assert folder.load() == result.book
            (run,) = folder.journal()
            digest = input_hash(SAVES[0])
            assert run.input_hash == digest
            assert run.id == f"{digest[:16]}-0"
            assert run.by == BY
            assert run.at == AT
            assert run.status == "applied"
            assert run.report == result.report

    def test_a_batch_is_one_run_whose_report_holds_every_effect(
        self, tmp_path: Path, store: str
    ) -> None:
        """A batch is one run whose report holds every change's effects, with a hash of its own."""
        with make(tmp_path / "book", store=store) as folder:
            folder.apply(SAVES[0], at=AT, by=BY)
            edit = save("la", "Lars", "07700 900499", "lars@governors.test")
            batch = [edit, SAVES[1], SAVES[2]]
            result = folder.apply(batch, at=LATER, by=BY)
            report = result.report
            assert report.status is Status.APPLIED
            assert report.change == "3 x address-book-save"
            assert report.created == ("address-book:mo", "address-book:ny")
            assert {(c.contact_id, c.field) for c in report.changes} >= {
                ("address-book:la", "phones"),
                ("address-book:mo", "phones"),
                ("address-book:ny", "emails"),
            }
            runs = folder.journal()
            assert len(runs) == 2
            assert runs[-1].report == report
            assert runs[-1].input_hash not in ("", *(input_hash(c) for c in batch))
            assert len(runs[-1].input_hash) == 64
            book = folder.load()
            assert book == result.book
            policy = folder.policy
            la = contact_at(book, "address-book:la", policy=policy, at=LATER)
            assert la.data.phones[0].number == "07700 900499"
            assert {"address-book:mo", "address-book:ny"} <= set(book.contacts)

    def test_a_batch_is_merged_one_after_another(self, tmp_path: Path, store: str) -> None:
        """A batch's changes merge in order, so a later one can act on an earlier one's contact."""
        with make(tmp_path / "book", store=store) as folder:
            # The removal needs the save before it in the same batch.
            batch: list[Change] = [SAVES[0], AddressBookRemove("address-book:la")]
            result = folder.apply(iter(batch), at=AT, by=BY)
            assert result.report.change == "2 changes: address-book-save, address-book-remove"
            assert result.report.created == ("address-book:la",)
            assert "address-book:la" in result.report.departed
            assert len(folder.journal()) == 1

    def test_a_failing_change_commits_nothing_of_its_batch(
        self, tmp_path: Path, store: str
    ) -> None:
        """When one change of a batch fails, nothing of the batch is committed, in either store."""
        with make(tmp_path / "book", store=store) as folder:
            folder.apply(SAVES[0], at=AT, by=BY)
            before, journal = folder.load(), folder.journal()
            stored = files(folder.path)
            batch: list[Change] = [SAVES[1], SAVES[2], AddressBookRemove("address-book:nobody")]
            with pytest.raises(UnknownContactError):
                folder.apply(batch, at=LATER, by=BY)
            assert folder.load() == before
            assert folder.journal() == journal
            assert "address-book:mo" not in folder.load().contacts
            if store == "json":
                assert files(folder.path) == stored

    def test_a_batch_of_nothing_is_a_usage_error(self, tmp_path: Path, store: str) -> None:
        """An empty batch is a UsageError and adds no run to the journal."""
        with make(tmp_path / "book", store=store) as folder:
            with pytest.raises(UsageError, match="nothing"):
                folder.apply([], at=AT, by=BY)
            assert folder.journal() == ()

    def test_a_dry_run_writes_nothing(self, tmp_path: Path, store: str) -> None:
        """dry_run() returns what the change would do but writes no byte to the folder."""
        with make(tmp_path / "book", store=store) as folder:
            folder.apply(SAVES[0], at=AT, by=BY)
            before, journal = folder.load(), folder.journal()
            stored = files(folder.path)
            result = folder.dry_run(SAVES[1], at=LATER, by=BY)
            assert result.report.status is Status.APPLIED
            assert result.report.created == ("address-book:mo",)
            assert "address-book:mo" in result.book.contacts
            assert folder.load() == before
            assert folder.journal() == journal
            assert files(folder.path) == stored

    def test_a_dry_run_of_a_batch_says_what_apply_would_do(
        self, tmp_path: Path, store: str
    ) -> None:
        """dry_run() of a batch returns exactly what apply() of it then returns."""
        with make(tmp_path / "book", store=store) as folder:
            planned = folder.dry_run(list(SAVES), at=AT, by=BY)
            assert folder.journal() == ()
            done = folder.apply(list(SAVES), at=AT, by=BY)
            assert planned == done

    def test_an_erasure_keeps_no_input_hash(self, tmp_path: Path, store: str) -> None:
        """An erasure's run keeps no input hash, and the person leaves earlier runs' reports too."""
        with make(tmp_path / "book", store=store) as folder:
            folder.apply(SAVES[0], at=AT, by=BY)
            result = folder.apply(Erase("address-book:la"), at=LATER, by=BY)
            assert result.report.erased == ("address-book:la",)
            runs = folder.journal()
            assert runs[-1].input_hash == ""
            assert runs[-1].id == "erase-1"
            assert "address-book:la" not in folder.load().contacts
            # The store took the erased person out of the earlier run's report too.
            assert runs[0].report.created == ()
            assert "Lars" not in json.dumps([attrs.asdict(r) for r in runs], default=str)

    def test_a_batch_with_an_erasure_keeps_no_input_hash(self, tmp_path: Path, store: str) -> None:
        """A batch that holds an erasure keeps no input hash either."""
        with make(tmp_path / "book", store=store) as folder:
            folder.apply(SAVES[0], at=AT, by=BY)
            folder.apply([SAVES[1], Erase("address-book:la")], at=LATER, by=BY)
            assert folder.journal()[-1].input_hash == ""


def test_a_held_sync_in_a_batch_is_not_hidden(tmp_path: Path) -> None:
    """A sync the guard holds keeps its Held in a batch's report, even beside an applied change."""
    with make(tmp_path / "book", MIS_ONLY) as folder:
        monday = full(london(23, 1), school())
        folder.apply(monday, at=london(23, 2), by="sync")
        # Tuesday's export lost everyone but one pupil: the guard holds it.
        tuesday = full(london(24, 1), [pupil("P9", "9", "9B")])
        result = folder.apply([tuesday], at=london(24, 2), by="sync")
        assert result.report.status is Status.HELD
        assert result.report.held is not None
        both = folder.dry_run([tuesday, SAVES[0]], at=london(24, 3), by="sync")
        assert both.report.status is Status.APPLIED
        assert both.report.held == result.report.held


# --------------------------------------------------------------------------
# Reading sources


def bundle(tmp_path: Path) -> Path:
    directory = tmp_path / "export"
    records = [
        pupil("P1", "9", "9B", given="Nina"),
        guardian("G1", "P1", mobile="07700 900501", email="g1@parent.test", given="Gita"),
        staff("S1", mobile="07700 900502", email="s1@school.test"),
    ]
    write_bundle(full(london(23, 1), records), directory)
    return directory


class TestSources:
    def test_the_policys_adapter_reads_the_source(self, book: BookFolder, tmp_path: Path) -> None:
        """source_adapter() builds the adapter the settings name for the source."""
        assert isinstance(book.source_adapter("mis", bundle(tmp_path)), OneRosterAdapter)

    def test_an_adapter_given_overrides_the_policys(self, book: BookFolder, tmp_path: Path) -> None:
        """An adapter named in the call is used instead of the one the settings name."""
        assert isinstance(book.source_adapter("mis", tmp_path, adapter="sds"), SdsAdapter)

    def test_an_unknown_source_is_a_usage_error(self, book: BookFolder, tmp_path: Path) -> None:
        """A source the settings do not name is a UsageError naming it."""
        with pytest.raises(UsageError, match="no source named 'sims'"):
            book.source_adapter("sims", tmp_path)

    def test_a_source_with_no_adapter_asks_for_one(self, book: BookFolder, tmp_path: Path) -> None:
        """A source with no adapter in the settings is a UsageError asking which to use."""
        with pytest.raises(UsageError, match="say which adapter"):
            book.source_adapter("address-book", tmp_path)

    def test_an_unknown_adapter_is_refused_when_the_book_is_made(self, tmp_path: Path) -> None:
        """A misspelt adapter is refused by create() with a suggestion, and no folder is made."""
        settings = MIS_ONLY.replace("oneroster", "onerostr")
        with pytest.raises(SourceDataError) as caught:
            make(tmp_path / "book", settings)
        assert caught.value.file == "policy.toml"
        assert caught.value.field == "sources.mis.adapter"
        assert "did you mean oneroster?" in caught.value.reason
        assert not (tmp_path / "book").exists()

    def test_an_unknown_adapter_given_for_one_read_is_named(
        self, book: BookFolder, tmp_path: Path
    ) -> None:
        """An unknown adapter named for one read is a UsageError naming that adapter."""
        with pytest.raises(UsageError, match="'nope'"):
            book.source_adapter("mis", tmp_path, adapter="nope")

    def test_a_csv_source_needs_a_mapping(self, book: BookFolder, tmp_path: Path) -> None:
        """A CSV read without a mapping is a UsageError asking for one, however csv was chosen."""
        with pytest.raises(UsageError, match=r"mapping.*\[sources\.import\]"):
            book.source_adapter("import", tmp_path / "import.csv")
        with pytest.raises(UsageError, match="mapping"):
            book.source_adapter("mis", tmp_path / "import.csv", adapter="csv")

    def test_the_mapping_is_found_in_the_folder(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A relative mapping path is found in the book folder, whatever the working directory."""
        with make(tmp_path / "book", WITH_MAPPING) as folder:
            (tmp_path / "book" / "mapping.toml").write_text(MAPPING, encoding="utf-8")
            (tmp_path / "elsewhere").mkdir()
            monkeypatch.chdir(tmp_path / "elsewhere")
            adapter = folder.source_adapter("import", tmp_path / "import.csv")
            assert isinstance(adapter, CsvImportAdapter)
            assert adapter.mapping.key == "Id"
            assert adapter.source == "import"

    def test_options_are_passed_to_the_adapter(self, tmp_path: Path) -> None:
        """A source's options reach its adapter: org picks that org, and an unknown org fails."""
        directory = bundle(tmp_path)
        ours = MIS_ONLY + 'options = { org = "school" }\n'
        with make(tmp_path / "ours", ours) as folder:
            reading = folder.read_source("mis", directory, extracted_at=london(23, 1))
            assert {r.key for r in reading.snapshot.records} == {"P1", "G1", "S1"}
        theirs = MIS_ONLY + 'options = { org = "another-school" }\n'
        # The org filter was passed on: the bundle has no such org.
        with (
            make(tmp_path / "theirs", theirs) as folder,
            pytest.raises(SourceTruthError, match="org"),
        ):
            folder.read_source("mis", directory, extracted_at=london(23, 1))

    @pytest.mark.parametrize(
        ("options", "where"),
        [
            ('{ orgg = "school" }', "sources.mis.options.orgg"),
            ('{ source = "other" }', "sources.mis.options.source"),
            ('{ max_reject_fraction = "lots" }', "sources.mis.options"),
            ("{ max_reject_fraction = 2 }", "sources.mis.options"),
        ],
    )
    def test_a_wrong_option_is_refused_when_the_book_is_made(
        self, tmp_path: Path, options: str, where: str
    ) -> None:
        """A bad adapter option (unknown, reserved, mistyped, out of range) is refused by create().

        The error names policy.toml, the key and the adapter, never a
        TypeError, and no folder is made.
        """
        with pytest.raises(SourceDataError) as caught:
            make(tmp_path / "book", MIS_ONLY + f"options = {options}\n")
        assert caught.value.file == "policy.toml"
        assert caught.value.field == where
        assert "oneroster" in caught.value.reason
        assert "TypeError" not in caught.value.reason
        assert not (tmp_path / "book").exists()

    def test_an_options_value_an_adapter_cannot_take_is_found_by_the_first_read(
        self, tmp_path: Path
    ) -> None:
        """A bad option value edited in after create() fails the first read, naming the section."""
        directory = bundle(tmp_path)
        with make(tmp_path / "book", MIS_ONLY) as folder:
            (folder.path / "policy.toml").write_text(
                MIS_ONLY + 'options = { max_reject_fraction = "lots" }\n', encoding="utf-8"
            )
            with pytest.raises(UsageError, match=r"\[sources\.mis\]") as caught:
                folder.read_source("mis", directory, extracted_at=london(23, 1))
            assert "oneroster" in str(caught.value)

    def test_reading_needs_no_suppression_key(self, book: BookFolder, tmp_path: Path) -> None:
        """Reading a source needs no suppression key: only changes do."""
        (book.path / "suppression.key").unlink()
        reading = book.read_source("mis", bundle(tmp_path), extracted_at=london(23, 1))
        assert len(reading.snapshot.records) == 3

    def test_a_oneroster_bundle_reads_and_syncs(self, book: BookFolder, tmp_path: Path) -> None:
        """A OneRoster bundle reads as a full snapshot of mis, and applying it creates them all."""
        reading = book.read_source("mis", bundle(tmp_path), extracted_at=london(23, 1))
        snapshot = reading.snapshot
        assert snapshot.source == "mis"
        assert snapshot.kind is SnapshotKind.FULL
        assert {r.key: r.data.given_name for r in snapshot.records} == {
            "P1": "Nina",
            "G1": "Gita",
            "S1": "Sam",
        }
        result = book.apply(snapshot, at=london(23, 2), by="sync")
        assert result.report.created == ("mis:G1", "mis:P1", "mis:S1")
        gita = contact_at(book.load(), "mis:G1", policy=book.policy, at=london(23, 2))
        assert gita.data.phones[0].number == "07700 900501"

    def test_a_csv_import_reads_through_its_mapping(self, tmp_path: Path) -> None:
        """A CSV import reads through the folder's mapping, rejecting nothing, and applies."""
        with make(tmp_path / "book", WITH_MAPPING) as folder:
            (tmp_path / "book" / "mapping.toml").write_text(MAPPING, encoding="utf-8")
            (tmp_path / "import.csv").write_text(CSV, encoding="utf-8", newline="")
            reading = folder.read_source("import", tmp_path / "import.csv", extracted_at=AT)
            snapshot = reading.snapshot
            assert snapshot.source == "import"
            assert reading.rejected == 0
            by_key = {r.key: r.data for r in snapshot.records}
            assert set(by_key) == {"I1", "I2"}
            assert by_key["I1"].given_name == "Ada"
            assert by_key["I2"].phones[0].number == "01632 960302"
            assert by_key["I2"].emails[0].address == "bo@example.org"
            result = folder.apply(snapshot, at=LATER, by="import")
            assert result.report.created == ("import:I1", "import:I2")

    def test_a_typo_in_the_mapping_names_the_file_and_the_key_in_words(
        self, tmp_path: Path
    ) -> None:
        """A typo in the mapping names its file and key with a suggestion, in plain words."""
        with make(tmp_path / "book", WITH_MAPPING) as folder:
            mapping = tmp_path / "book" / "mapping.toml"
            mapping.write_text(MAPPING.replace("given_name", "given_nam"), encoding="utf-8")
            with pytest.raises(SourceDataError) as caught:
                folder.source_adapter("import", tmp_path / "import.csv")
        error = caught.value
        assert error.file == str(mapping)
        assert error.field == "given_nam"
        assert "did you mean given_name?" in error.reason
        assert "extra fields" not in str(error)
        assert "@ $" not in str(error)

    def test_a_missing_mapping_file_names_the_file_and_the_key(self, tmp_path: Path) -> None:
        """A missing mapping file is an error on that path naming sources.import.mapping."""
        with (
            make(tmp_path / "book", WITH_MAPPING) as folder,
            pytest.raises(SourceDataError) as caught,
        ):
            folder.source_adapter("import", tmp_path / "import.csv")
        error = caught.value
        assert error.file == str(tmp_path / "book" / "mapping.toml")
        assert "sources.import.mapping" in error.reason
        assert "no such file" in error.reason


# --------------------------------------------------------------------------
# Transports


class Gateway:
    """A local SMS gateway that accepts everything and keeps what it was sent."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], Any]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.seen.append((dict(self.headers.items()), json.loads(body)))
                answer = json.dumps({"id": "gw-1", "status": "accepted"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    running = Gateway()
    yield running
    running.close()


def sms_settings(url: str, extra: str = "") -> str:
    return (
        MIS_ONLY
        + f'[transports.sms]\nadapter = "sms-http"\nurl = "{url}"\nsender = "School"\n'
        + 'token_env = "SCHOOL_SMS_TOKEN"\n'
        + extra
    )


def envelope(channel: Channel = Channel.SMS) -> Envelope:
    address = "+447700900123" if channel is Channel.SMS else "parent@example.org"
    return Envelope("k-1", channel, address, "Trip", "The coach leaves at nine.")


class TestTransports:
    def test_without_settings_each_channel_has_an_outbox_in_the_folder(
        self, book: BookFolder
    ) -> None:
        """A channel with no transport set gets an outbox writing to outbox/<channel>."""
        made = book.transports([Channel.SMS, Channel.EMAIL])
        assert set(made) == {Channel.SMS, Channel.EMAIL}
        for channel, transport in made.items():
            assert isinstance(transport, OutboxTransport)
            assert transport.channel is channel
            (result,) = transport.send([envelope(channel)])
            assert result.status is DeliveryStatus.ACCEPTED
            written = json.loads((book.path / "outbox" / channel.value / "k-1.json").read_text())
            assert written["address"] == envelope(channel).address

    def test_only_the_channels_asked_for(self, book: BookFolder) -> None:
        """transports() builds transports for exactly the channels asked for, none for none."""
        assert set(book.transports([Channel.EMAIL])) == {Channel.EMAIL}
        assert book.transports([]) == {}

    def test_an_sms_gateway_gets_its_token_from_the_environment(
        self, tmp_path: Path, gateway: Gateway
    ) -> None:
        """An sms-http transport sends with the token from its variable, kept out of its repr."""
        environ = {"SCHOOL_SMS_TOKEN": "tok-7c1e9a"}
        with make(tmp_path / "book", sms_settings(gateway.url), environ=environ) as folder:
            made = folder.transports([Channel.SMS, Channel.EMAIL])
            sms = made[Channel.SMS]
            assert isinstance(sms, HttpSmsTransport)
            assert isinstance(made[Channel.EMAIL], OutboxTransport)
            assert "tok-7c1e9a" not in repr(sms)
            (result,) = sms.send([envelope()])
        assert result.status is DeliveryStatus.ACCEPTED
        ((headers, body),) = gateway.seen
        assert headers["Authorization"] == "Bearer tok-7c1e9a"
        assert body["to"] == "+447700900123"
        assert body["from"] == "School"

    def test_a_missing_token_names_the_key(self, tmp_path: Path) -> None:
        """An unset token variable is an error naming its key; the other channel's outbox builds."""
        settings = sms_settings("https://sms.example.org/send")
        with make(tmp_path / "book", settings) as folder:
            with pytest.raises(SourceDataError) as caught:
                folder.transports([Channel.SMS])
            assert caught.value.field == "transports.sms.token_env"
            assert caught.value.file == str(folder.path / "policy.toml")
            # The outbox of another channel needs nothing from the environment.
            assert isinstance(folder.transports([Channel.EMAIL])[Channel.EMAIL], OutboxTransport)

    @pytest.mark.parametrize(
        ("extra", "where"),
        [
            ('colour = "red"\n', "transports.sms.colour"),
            ('hots_env = "SMS_HOST"\n', "transports.sms.hots_env"),
        ],
    )
    def test_an_unknown_option_is_refused_when_the_book_is_made(
        self, tmp_path: Path, extra: str, where: str
    ) -> None:
        """An unknown transport option, even as an _env key, is refused by create()."""
        with pytest.raises(SourceDataError) as caught:
            make(tmp_path / "book", sms_settings("https://sms.example.org/send", extra))
        assert caught.value.file == "policy.toml"
        assert caught.value.field == where
        assert "sms-http" in caught.value.reason
        assert not (tmp_path / "book").exists()

    @pytest.mark.parametrize(
        ("extra", "found"),
        [('format = "xml"\n', "xml"), ("max_segments = 0\n", "max_segments")],
    )
    def test_a_wrong_option_names_the_section(self, tmp_path: Path, extra: str, found: str) -> None:
        """A bad transport option value is a UsageError naming [transports.sms], not the token."""
        settings = sms_settings("https://sms.example.org/send", extra)
        environ = {"SCHOOL_SMS_TOKEN": "tok-7c1e9a"}
        with make(tmp_path / "book", settings, environ=environ) as folder:
            with pytest.raises(UsageError, match=r"\[transports\.sms\]") as caught:
                folder.transports([Channel.SMS])
            assert found in str(caught.value)
            assert "tok-7c1e9a" not in str(caught.value)

    def test_an_unknown_transport_is_refused_when_the_book_is_made(self, tmp_path: Path) -> None:
        """An unknown transport adapter is refused by create(), listing the adapters there are."""
        settings = MIS_ONLY + '[transports.sms]\nadapter = "pigeon"\n'
        with pytest.raises(SourceDataError) as caught:
            make(tmp_path / "book", settings)
        assert caught.value.field == "transports.sms.adapter"
        assert "pigeon" in caught.value.reason
        assert "sms-http" in caught.value.reason  # the ones there are

    def test_a_transport_for_another_channel_is_refused(self, tmp_path: Path) -> None:
        """An SMS adapter set for email is a UsageError saying that it delivers sms."""
        settings = MIS_ONLY + (
            '[transports.email]\nadapter = "sms-http"\nurl = "https://sms.example.org/send"\n'
            'sender = "School"\nauth = "none"\n'
        )
        with (
            make(tmp_path / "book", settings) as folder,
            pytest.raises(UsageError, match=r"\[transports\.email\].*delivers sms"),
        ):
            folder.transports([Channel.EMAIL])

    def test_smtp_is_built_from_its_settings(self, tmp_path: Path) -> None:
        """An smtp transport set for email is built as an SmtpTransport on the email channel."""
        settings = MIS_ONLY + (
            '[transports.email]\nadapter = "smtp"\nhost = "smtp.example.org"\n'
            'sender = "office@school.example.org"\nusername = "office"\n'
            'password_env = "SMTP_PASSWORD"\n'
        )
        with make(tmp_path / "book", settings, environ={"SMTP_PASSWORD": "pw-31"}) as folder:
            email = folder.transports([Channel.EMAIL])[Channel.EMAIL]
            assert isinstance(email, SmtpTransport)
            assert email.channel is Channel.EMAIL

    def test_an_outbox_can_be_chosen_and_placed(self, tmp_path: Path) -> None:
        """An outbox transport writes to the folder set for it, else to outbox/<channel>."""
        settings = MIS_ONLY + (
            '[transports.sms]\nadapter = "outbox"\nfolder = "held/sms"\n'
            '[transports.email]\nadapter = "outbox"\n'
        )
        with make(tmp_path / "book", settings) as folder:
            made = folder.transports([Channel.SMS, Channel.EMAIL])
            made[Channel.SMS].send([envelope(Channel.SMS)])
            made[Channel.EMAIL].send([envelope(Channel.EMAIL)])
            assert (folder.path / "held" / "sms" / "k-1.json").is_file()
            assert (folder.path / "outbox" / "email" / "k-1.json").is_file()


# --------------------------------------------------------------------------
# Sending and the audit


def governors(folder: BookFolder) -> None:
    folder.apply(list(SAVES), at=AT, by=BY)


def sent(folder: BookFolder, message_id: str = "trip-2026-11") -> AuditRecord:
    message = Message(
        message_id,
        "Trip",
        "The coach leaves at nine.",
        channels=(Channel.SMS, Channel.EMAIL),
        mode=SendMode.EACH,
        contacts=tuple(s.contact_id for s in SAVES),
    )
    planned = plan(folder.load(), message, policy=folder.policy, at=LATER)
    channels = tuple(dict.fromkeys(d.channel for d in planned.deliveries))
    return send(
        planned,
        folder.transports(channels),
        log=folder.delivery_log,
        sent_at=london(23, 10, 1),
        sleep=lambda _: None,
    )


class TestAudit:
    def test_a_send_is_audited_and_read_back(self, book: BookFolder) -> None:
        """A send's audit is saved in audit/ and read back equal; the outbox and log agree."""
        governors(book)
        record = sent(book)
        assert record.count(DeliveryStatus.ACCEPTED) == 6
        path = book.save_audit(record)
        assert path.parent == book.path / "audit"
        assert book.audit("trip-2026-11") == record
        outbox = sorted(p.name for p in (book.path / "outbox" / "sms").iterdir())
        assert outbox == sorted(
            f"{d.key}.json"
            for d in (o.delivery for o in record.outcomes)
            if d.channel is Channel.SMS
        )
        assert len(book.delivery_log.results()) == 6

    def test_a_resend_replaces_the_audit_and_sends_nothing_twice(self, book: BookFolder) -> None:
        """Sending a message again hands nothing over twice and replaces its audit file."""
        governors(book)
        first = book.save_audit(sent(book))
        record = sent(book)
        assert book.save_audit(record) == first
        assert book.audit("trip-2026-11") == record
        assert len(list((book.path / "outbox" / "sms").iterdir())) == 3
        assert [p.name for p in (book.path / "audit").iterdir()] == [first.name]

    def test_an_unknown_message_is_a_usage_error(self, book: BookFolder) -> None:
        """Asking for the audit of a message never sent is a UsageError naming it."""
        with pytest.raises(UsageError, match="no message 'never-sent'"):
            book.audit("never-sent")

    @pytest.mark.parametrize(
        "message_id",
        ["../../escape", "..", ".", "a/b", "/etc/passwd", "a\\b", "~x", "term 1: trip", "é"],
    )
    def test_an_id_cannot_leave_the_audit_folder(self, book: BookFolder, message_id: str) -> None:
        """An id with path parts, dots or odd characters is saved inside audit/ and reads back."""
        governors(book)
        record = relabel(sent(book), message_id)
        path = book.save_audit(record)
        assert path.resolve().parent == (book.path / "audit").resolve()
        assert book.audit(message_id) == record
        assert sorted(files(book.path.parent)) == sorted(
            f"book/{name}" for name in files(book.path)
        )

    def test_ids_that_look_alike_keep_their_own_records(self, book: BookFolder) -> None:
        """Ids that a plain clean-up would make alike each keep an audit file of their own."""
        governors(book)
        record = sent(book)
        ids = ["a/b", "a_b", "a\\b", "a b", "A_B", "a.b", "a..b"]
        for message_id in ids:
            book.save_audit(relabel(record, message_id))
        for message_id in ids:
            assert book.audit(message_id).message.id == message_id
        assert len(list((book.path / "audit").iterdir())) == len(ids)

    def test_a_file_holding_another_messages_audit_is_never_taken_for_it(
        self, book: BookFolder
    ) -> None:
        """An audit file holding another id (a case-blind rename) is never read or replaced."""
        # As on a filesystem that ignores case, where "Trip" and "trip" share a file.
        governors(book)
        record = sent(book)
        path = book.save_audit(relabel(record, "trip"))
        path.rename(book.path / "audit" / "Trip.json")
        with pytest.raises(UsageError, match="no message 'Trip'"):
            book.audit("Trip")
        with pytest.raises(UsageError, match="another message"):
            book.save_audit(relabel(record, "Trip"))
        # The record on disk was not replaced.
        assert (
            json.loads((book.path / "audit" / "Trip.json").read_text())["data"]["message"]["id"]
            == "trip"
        )


def relabel(record: AuditRecord, message_id: str) -> AuditRecord:
    return attrs.evolve(record, message=attrs.evolve(record.message, id=message_id))


@pytest.fixture(scope="module")
def audit_book(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BookFolder, AuditRecord]]:
    folder = make(tmp_path_factory.mktemp("audits") / "book")
    governors(folder)
    yield folder, sent(folder)
    folder.close()


@settings(max_examples=budget.examples(200), deadline=None)
@given(message_id=st.text(min_size=1, max_size=300))
def test_any_id_round_trips_inside_the_audit_folder(
    audit_book: tuple[BookFolder, AuditRecord], message_id: str
) -> None:
    """Any message id's audit is saved inside audit/ and reads back equal.

    Its file name ends in .json, fits in 255 bytes, and is the name of no other
    id.
    """
    folder, record = audit_book
    labelled = relabel(record, message_id)
    path = folder.save_audit(labelled)
    assert path.parent == folder.path / "audit"
    assert path.name.endswith(".json")
    assert len(path.name.encode()) <= 255
    assert folder.audit(message_id) == labelled
    # No id shares a file with another: each file holds the id it is named for.
    for saved in (folder.path / "audit").iterdir():
        kept = json.loads(saved.read_bytes().decode("utf-8", "surrogatepass"))
        assert folder._audit_file(kept["data"]["message"]["id"]) == saved


# --------------------------------------------------------------------------
# combine_reports


def _pools() -> dict[str, list[Any]]:
    """Real report items, from real merges of the test school."""
    policy_book = make(Path(tempfile.mkdtemp()) / "book", MIS_ONLY)
    policy = policy_book.policy
    policy_book.close()
    monday = merge(Book(), full(london(23, 1), school()), policy=policy, at=london(23, 2), by="s")
    edit = SetOverride("mis:G9", "phones", ContactData(phones=(Phone("07700 900777"),)))
    edited = merge(monday.book, edit, policy=policy, at=london(23, 9), by="o")
    tuesday = merge(
        edited.book,
        full(london(24, 1), school(guardian("G9", "P9", mobile="07700 900999"))),
        policy=policy,
        at=london(24, 2),
        by="s",
    )
    changes: list[FieldChange] = [*monday.report.changes, *tuesday.report.changes]
    overrides: list[Override] = list(edited.report.overrides_set)
    ended: list[EndedOverride] = list(tuesday.report.overrides_ended)
    assert changes
    assert overrides
    assert ended
    return {"changes": changes, "overrides": overrides, "ended": ended}


POOLS = _pools()
ids = st.sampled_from(["mis:G9", "mis:P9", "address-book:la", "import:I1"])
KINDS = ["snapshot", "address-book-save", "erase", "set-override"]
HELD = st.builds(
    Held, st.just("too many departures"), st.integers(0, 9), st.integers(9, 99), st.text(max_size=4)
)
reports = st.builds(
    Report,
    status=st.sampled_from(Status),
    change=st.sampled_from(KINDS),
    at=st.just(LATER),
    by=st.sampled_from(["office", "sync"]),
    source=st.none() | st.just("mis"),
    sync=st.none() | st.integers(1, 9),
    created=st.lists(ids, max_size=3).map(tuple),
    changes=st.lists(st.sampled_from(POOLS["changes"]), max_size=3).map(tuple),
    departed=st.lists(ids, max_size=2).map(tuple),
    returned=st.lists(ids, max_size=2).map(tuple),
    erased=st.lists(ids, max_size=2).map(tuple),
    overrides_set=st.lists(st.sampled_from(POOLS["overrides"]), max_size=2).map(tuple),
    overrides_ended=st.lists(st.sampled_from(POOLS["ended"]), max_size=2).map(tuple),
    overrides_kept=st.lists(st.sampled_from(POOLS["overrides"]), max_size=2).map(tuple),
    unnormalised=st.lists(
        st.builds(Unnormalised, ids, st.just("phones"), st.integers(0, 2), st.just("too short")),
        max_size=2,
    ).map(tuple),
    duplicates=st.lists(
        st.builds(PossibleDuplicate, ids, ids, st.just(("same name",))), max_size=2
    ).map(tuple),
    held=st.none() | HELD,
    suppressed=st.integers(0, 5),
)
ITEMS = (
    "created",
    "changes",
    "departed",
    "returned",
    "erased",
    "overrides_set",
    "overrides_ended",
    "overrides_kept",
    "unnormalised",
    "duplicates",
)


@settings(max_examples=budget.examples(300), deadline=None)
@given(parts=st.lists(reports, min_size=1, max_size=6))
def test_a_combined_report_holds_every_item_of_every_part_in_order(parts: list[Report]) -> None:
    """combine_reports() keeps every item of every part, in order, and sums the suppressed.

    It is applied if any part is, else held if any is, else no change; it keeps
    the first Held, the last time and author, and names every kind of change;
    one part combines to itself.
    """
    combined = combine_reports(parts)
    for name in ITEMS:
        assert getattr(combined, name) == tuple(x for p in parts for x in getattr(p, name))
    assert combined.suppressed == sum(p.suppressed for p in parts)
    statuses = {p.status for p in parts}
    assert (combined.status is Status.APPLIED) == (Status.APPLIED in statuses)
    if Status.APPLIED not in statuses:
        held = Status.HELD in statuses
        assert combined.status is (Status.HELD if held else Status.NO_CHANGE)
    assert combined.held == next((p.held for p in parts if p.held is not None), None)
    assert (combined.at, combined.by) == (parts[-1].at, parts[-1].by)
    kinds = list(dict.fromkeys(p.change for p in parts))
    if len(parts) == 1:
        assert combined == parts[0]
    elif len(kinds) == 1:
        assert combined.change == f"{len(parts)} x {kinds[0]}"
    else:
        assert all(k in combined.change for k in kinds)


def test_combining_nothing_is_a_usage_error() -> None:
    """combine_reports() of no report at all is a UsageError."""
    with pytest.raises(UsageError):
        combine_reports([])


def test_combined_report_of_a_real_batch_matches_its_parts(book: BookFolder) -> None:
    """A batch's report is combine_reports() of its changes' reports, merged one by one."""
    policy, bookstate = book.policy, book.load()
    parts = []
    for change in SAVES:
        result = merge(bookstate, change, policy=policy, at=AT, by=BY)
        bookstate = result.book
        parts.append(result.report)
    assert book.apply(list(SAVES), at=AT, by=BY).report == combine_reports(parts)


class TestCoverage:
    COVERS_ALL = '[sources.mis]\nkind = "mis"\nadapter = "oneroster"\n'  # covers every field

    def test_covering_a_field_the_adapter_cannot_read_is_refused(self, tmp_path: Path) -> None:
        """A covered field the adapter never fills would be emptied by every sync."""
        with make(tmp_path / "book", MIS_ONLY) as folder:
            (folder.path / "policy.toml").write_text(self.COVERS_ALL, encoding="utf-8")
            with pytest.raises(UsageError, match="registration_group") as caught:
                folder.read_source("mis", bundle(tmp_path), extracted_at=london(23, 1))
            assert "covers = [" in str(caught.value)
            assert folder.journal() == ()

    def test_it_is_refused_when_the_book_is_made(self, tmp_path: Path) -> None:
        """Covering a field the adapter cannot read is refused by create(); no folder is made."""
        with pytest.raises(SourceDataError) as caught:
            make(tmp_path / "book", self.COVERS_ALL)
        assert caught.value.file == "policy.toml"
        assert caught.value.field == "sources.mis.covers"
        assert "registration_group" in caught.value.reason
        assert "covers = [" in caught.value.reason
        assert not (tmp_path / "book").exists()

    def test_a_csv_source_is_checked_against_its_mapping_when_there(self, tmp_path: Path) -> None:
        """A CSV source covering a field its mapping lacks is refused; only the mapping stays."""
        (tmp_path / "book").mkdir()
        (tmp_path / "book" / "mapping.toml").write_text(
            MAPPING.replace('emails = [{ column = "Email" }]\n', ""), encoding="utf-8"
        )
        with pytest.raises(SourceDataError) as caught:
            make(tmp_path / "book", WITH_MAPPING)  # the import covers emails
        assert caught.value.field == "sources.import.covers"
        assert "emails" in caught.value.reason
        assert [p.name for p in (tmp_path / "book").iterdir()] == ["mapping.toml"]


# --------------------------------------------------------------------------
# What the folder's files let others read (rule 13)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a plain open() makes files anyone can read."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
class TestPermissions:
    def test_a_folder_create_makes_is_its_owners_only(self, tmp_path: Path) -> None:
        """A folder create() makes is mode 0700, even under umask 022."""
        make(tmp_path / "schools" / "st-olaf").close()
        assert mode(tmp_path / "schools" / "st-olaf") == 0o700

    def test_an_existing_folder_keeps_its_permissions(self, tmp_path: Path) -> None:
        """An existing folder made into a book keeps the mode it had."""
        (tmp_path / "book").mkdir(mode=0o750)
        make(tmp_path / "book").close()
        assert mode(tmp_path / "book") == 0o750

    @pytest.mark.parametrize("store", STORES)
    def test_the_store_is_its_owners_only(self, tmp_path: Path, store: str) -> None:
        """The store, SQLite or JSON, is mode 0600 after a change, even under umask 022."""
        with make(tmp_path / "book", store=store) as folder:
            folder.apply(SAVES[0], at=AT, by=BY)
        assert mode(tmp_path / "book" / f"book.{store}") == 0o600

    def test_sent_records_are_their_owners_only(self, tmp_path: Path) -> None:
        """Audits, the delivery log and outbox files are mode 0600, and their folders 0700."""
        settings = MIS_ONLY + '[transports.sms]\nadapter = "outbox"\nfolder = "held/sms"\n'
        with make(tmp_path / "book", settings) as folder:
            governors(folder)
            audit = folder.save_audit(sent(folder))
            written = [
                audit,
                folder.path / "deliveries.jsonl",
                *(folder.path / "held" / "sms").iterdir(),
                *(folder.path / "outbox" / "email").iterdir(),
            ]
            assert len(written) == 2 + 3 + 3
            for path in written:
                assert mode(path) == 0o600, path
            for path in (folder.path / "audit", folder.path / "held" / "sms"):
                assert mode(path) == 0o700, path


class TestAtomicWrites:
    def test_the_settings_file_is_put_in_place_whole(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """policy.toml marks a folder as a book: it is renamed into place, never half-written."""
        renamed: list[str] = []
        real = os.replace

        def replace(source: Any, target: Any) -> None:
            renamed.append(Path(target).name)
            real(source, target)

        monkeypatch.setattr(os, "replace", replace)
        make(tmp_path / "book", MIS_ONLY).close()
        assert "policy.toml" in renamed
        assert (tmp_path / "book" / "policy.toml").read_text(encoding="utf-8") == MIS_ONLY
        assert sorted(p.name for p in (tmp_path / "book").iterdir()) == [
            "book.sqlite",
            "policy.toml",
            "suppression.key",
        ]

    def test_an_audit_is_flushed_to_disk_with_its_folder(
        self, book: BookFolder, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Saving an audit fsyncs at least twice: the file, then the folder holding its new name."""
        governors(book)
        record = sent(book)
        synced: list[int] = []
        real = os.fsync

        def fsync(fd: int) -> None:
            synced.append(fd)
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        book.save_audit(record)
        assert len(synced) >= 2  # the file, then the folder that holds its new name

    def test_a_leftover_temporary_name_is_not_in_the_way(self, book: BookFolder) -> None:
        """Something left at the audit's .tmp name neither stops the save nor is removed."""
        governors(book)
        record = sent(book)
        (book.path / "audit").mkdir()
        (book.path / "audit" / "trip-2026-11.json.tmp").mkdir()  # left by someone else
        book.save_audit(record)
        assert book.audit("trip-2026-11") == record
        assert sorted(p.name for p in (book.path / "audit").iterdir()) == [
            "trip-2026-11.json",
            "trip-2026-11.json.tmp",
        ]


class TestSharedKey:
    def test_a_new_key_is_not_reused(self, book: BookFolder) -> None:
        """A folder that made its own key does not report it as reused."""
        assert book.reused_key is False

    def test_an_existing_key_at_the_variable_is_reported_as_reused(self, tmp_path: Path) -> None:
        """reused_key is true only for the create() that found a key file already in place."""
        key = tmp_path / "shared.key"
        key.write_text("f" * 64 + "\n", encoding="ascii")
        with make(tmp_path / "book", environ={KEY_FILE_VARIABLE: str(key)}) as folder:
            assert folder.reused_key is True
        with make(tmp_path / "other", environ={KEY_FILE_VARIABLE: str(tmp_path / "new.key")}) as f:
            assert f.reused_key is False
        assert BookFolder.open(tmp_path / "book", environ={}).reused_key is False


class TestHandEditedSettings:
    """A policy.toml edited after init is checked against the adapters when it is read."""

    @pytest.mark.parametrize(
        ("extra", "where"),
        [
            ('adapter = "onerostr"\n', "sources.mis.adapter"),
            ('adapter = "oneroster"\noptions = { orgg = "x" }\n', "sources.mis.options.orgg"),
            (
                'adapter = "oneroster"\n[transports.email]\nadapter = "smtp"\nhots = "x"\n'
                'sender = "office@school.example.org"\n',
                "transports.email.hots",
            ),
            (
                'adapter = "oneroster"\n[transports.sms]\nadapter = "pigeon"\n',
                "transports.sms.adapter",
            ),
        ],
    )
    def test_an_adapter_mistake_names_the_file_and_the_key(
        self, book: BookFolder, extra: str, where: str
    ) -> None:
        """A hand-edited adapter or option mistake fails the policy's read, naming file and key."""
        governors(book)
        (book.path / "policy.toml").write_text(
            '[sources.mis]\nkind = "mis"\ncovers = ["phones"]\n' + extra, encoding="utf-8"
        )
        opened = BookFolder.open(book.path, environ={})
        with pytest.raises(SourceDataError) as caught:
            _ = opened.policy
        assert caught.value.file == str(book.path / "policy.toml")
        assert caught.value.field == where
        assert "TypeError" not in str(caught.value)


# --------------------------------------------------------------------------
# Erasure: nothing of the person anywhere in the folder


LARS = (b"Lars", b"900401", b"lars@governors", b"Just you", b"only for Lars")


def send_to(folder: BookFolder, message_id: str, contacts: tuple[str, ...], subject: str) -> None:
    message = Message(
        message_id,
        subject,
        f"A note {subject.lower()}.",
        channels=(Channel.SMS, Channel.EMAIL),
        mode=SendMode.EACH,
        contacts=contacts,
    )
    planned = plan(folder.load(), message, policy=folder.policy, at=LATER)
    channels = tuple(dict.fromkeys(d.channel for d in planned.deliveries))
    record = send(
        planned,
        folder.transports(channels),
        log=folder.delivery_log,
        sent_at=london(23, 10, 1),
        sleep=lambda _: None,
    )
    folder.save_audit(record)


def delivery_keys(folder: BookFolder) -> list[str]:
    found = []
    for line in (folder.path / "deliveries.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        found.append(entry["key"] if "key" in entry else entry["result"]["key"])
    return found


OUTBOX_ELSEWHERE = MIS_ONLY + '[transports.sms]\nadapter = "outbox"\nfolder = "held/sms"\n'


@pytest.mark.parametrize("store", STORES)
def test_an_erased_person_is_in_no_byte_of_the_folder(tmp_path: Path, store: str) -> None:
    """Rule 13: the store, the audit, the delivery log and every outbox forget them."""
    with make(tmp_path / "book", OUTBOX_ELSEWHERE, store=store) as folder:
        governors(folder)
        send_to(folder, "m1", ("address-book:la", "address-book:mo"), "Minutes")
        send_to(folder, "m2", ("address-book:la",), "Just you: only for Lars")
        theirs = {
            o.delivery.key
            for message_id in ("m1", "m2")
            for o in folder.audit(message_id).outcomes
            if o.delivery.contact_ids == ("address-book:la",)
        }
        others = {
            o.delivery.key
            for o in folder.audit("m1").outcomes
            if o.delivery.contact_ids == ("address-book:mo",)
        }
        assert len(theirs) == 4  # a text and an email of each message
        assert len(others) == 2
        assert theirs <= set(delivery_keys(folder))
        everything = b"".join(files(folder.path).values())
        assert all(value in everything for value in LARS)  # so that the check below can fail

        result, cleaned = folder.erase("address-book:la", at=london(23, 11), by="dpo")

        assert result.report.erased == ("address-book:la",)
        assert cleaned == (folder.path / "audit" / "m1.json", folder.path / "audit" / "m2.json")
        assert folder.unreadable_audits == ()
        for name, data in files(folder.path).items():
            for value in LARS:
                assert value not in data, (name, value)
        kept = delivery_keys(folder)
        assert not theirs & set(kept)
        assert others <= set(kept)
        # A message only to them is gone whole, its file name with it.
        assert not (folder.path / "audit" / "m2.json").exists()
        with pytest.raises(UsageError, match="no message 'm2'"):
            folder.audit("m2")
        # The others' sends stay, in both outboxes.
        assert {o.delivery.key for o in folder.audit("m1").outcomes} == others
        outboxes = [*(folder.path / "held").rglob("*.json"), *(folder.path / "outbox").rglob("*")]
        assert {p.stem for p in outboxes if p.is_file()} == others
        assert len(list((folder.path / "held" / "sms").iterdir())) == 1


class TestUnreadableAudit:
    def broken(self, book: BookFolder) -> Path:
        governors(book)
        send_to(book, "m1", ("address-book:la", "address-book:mo"), "Minutes")
        broken = book.path / "audit" / "m0.json"
        broken.write_text('{"format": ', encoding="utf-8")
        return broken

    def test_it_is_named_when_asked_for(self, book: BookFolder) -> None:
        """An audit file that is not valid JSON is a SourceDataError naming it when asked for."""
        broken = self.broken(book)
        with pytest.raises(SourceDataError) as caught:
            book.audit("m0")
        assert caught.value.file == str(broken)
        assert os.path.join("audit", "m0.json") in str(caught.value)

    def test_an_erasure_goes_past_it_and_says_so(
        self, book: BookFolder, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An erasure cleans the readable audits, leaves an unreadable one alone and warns of it."""
        broken = self.broken(book)
        with caplog.at_level("WARNING", logger="sourcetruth"):
            result, cleaned = book.erase("address-book:la", at=london(23, 11), by="dpo")
        assert result.report.erased == ("address-book:la",)
        assert cleaned == (book.path / "audit" / "m1.json",)
        assert book.unreadable_audits == (broken,)
        assert broken.read_text(encoding="utf-8") == '{"format": '
        (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
        assert "m0.json" in warning.getMessage()
        assert b"Lars" not in (book.path / "audit" / "m1.json").read_bytes()
