"""A book in PostgreSQL: ``--book postgresql://HOST/DB?book=SCHOOL``, its password never in it.

The per-command tests run a representative test of each command on a folder
and in a database (``@on_both``); here, the real program on a database book,
with its password file; what the URL may not hold; and what only a book in a
database does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest
from cli_helpers import USER, Cli, on_both, one_error_line, school, when

from sourcetruth.adapters.stores.postgres import book_url, split_url
from sourcetruth.app.databasebook import DatabaseBook
from sourcetruth.exceptions import UsageError

#: What a test puts where a password goes: it must never be printed.
SECRET = "not-a-real-password-7f3a"


def run_program(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m sourcetruth`` with *env* (and no book or key file from the test's own)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCETRUTH_", "PG"))}
    return subprocess.run(
        [sys.executable, "-m", "sourcetruth", *args],
        capture_output=True,
        text=True,
        env={**environ, "SOURCETRUTH_USER": USER, **env},
        timeout=120,
        check=False,
    )


def with_password(url: str) -> str:
    """*url* with a password written into it, as a user might paste it."""
    scheme, _, rest = url.partition("://")
    user, _, after = rest.partition("@")
    return f"{scheme}://{user}:{SECRET}@{after}"


class TestTheProgram:
    def test_a_school_from_init_to_erase_with_its_password_in_a_pgpass_file(
        self, cli_database: str, tmp_path: Path
    ) -> None:
        """The real program runs init, sync, show, explain and erase on a database book, its
        password file named by PGPASSFILE; a URL holding a password is refused, unechoed."""
        url = book_url(cli_database, "program-school")
        pgpass = tmp_path / "pgpass"
        pgpass.write_text(f"*:*:*:*:{SECRET}\n", encoding="utf-8")
        pgpass.chmod(0o600)
        env = {"PGPASSFILE": os.fspath(pgpass)}
        cli = Cli(tmp_path, book=url)

        made = run_program("--book", url, "init", env=env)
        assert made.returncode == 0, made.stderr
        assert made.stdout.startswith(f"Created a book in {url} (PostgreSQL).")
        env["SOURCETRUTH_BOOK"] = url  # the others find the book as a job would
        read = when(24, 1, 30)
        synced = run_program(
            "sync", "mis", cli.export("tue"), "--at", when(24, 2), "--extracted-at", read, env=env
        )
        assert synced.returncode == 0, synced.stderr
        shown = run_program("show", "mis:G6", "--at", when(24, 9), env=env)
        assert "Zebedee Quill" in shown.stdout, shown.stderr
        explained = run_program("explain", "mis:G6", "phones", "--at", when(24, 9), env=env)
        assert "900106 (mobile)" in explained.stdout, explained.stderr
        erased = run_program("erase", "mis:G6", "--yes", "--at", when(24, 10), env=env)
        assert erased.stdout.startswith("Erased mis:G6."), erased.stderr
        cli.fails(2, "show", "mis:G6", "--at", when(24, 11))
        for value in (b"Zebedee", b"900106"):
            assert not any(value in row for row in cli.stored().values())

        refused = run_program("--book", with_password(url), "policy", env=env)
        assert refused.returncode == 2
        assert "holds a password" in refused.stderr
        assert "PGPASSWORD" in refused.stderr
        for said in (made, synced, shown, explained, erased, refused):
            assert SECRET not in said.stdout + said.stderr


class TestTheURL:
    def test_a_password_in_the_url_is_refused_before_connecting(
        self, cli_database: str, tmp_path: Path
    ) -> None:
        """A URL with a password, as user:password@ or password=, exits 2 and never echoes it."""
        url = book_url(cli_database, "with-password")
        connection, book = split_url(url)
        cli = Cli(tmp_path)
        for given in (with_password(url), book_url(f"{connection}&password={SECRET}", book)):
            cli.book = given
            for command in (("init",), ("contacts",)):
                ran = cli.fails(2, *command)
                line = one_error_line(ran)
                assert "holds a password" in line
                assert SECRET not in ran.out + ran.err

    def test_password_env_names_the_variable_that_holds_it(
        self, cli_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--password-env NAME reads the password from NAME: unset, it says so (status 2)."""
        cli = Cli(tmp_path, book=book_url(cli_database, "password-env"))
        monkeypatch.delenv("SCHOOLS_DB_PASSWORD", raising=False)
        unset = cli.fails(2, "--password-env", "SCHOOLS_DB_PASSWORD", "init")
        assert "SCHOOLS_DB_PASSWORD that holds the password is not set" in one_error_line(unset)
        # Read from the command's own environment, as every other variable it names is.
        monkeypatch.setenv("SCHOOLS_DB_PASSWORD", SECRET)
        assert "is not set" in one_error_line(
            cli.fails(2, "--password-env", "SCHOOLS_DB_PASSWORD", "init")
        )
        cli.environ["SCHOOLS_DB_PASSWORD"] = SECRET
        made = cli.ok("init", "--password-env", "SCHOOLS_DB_PASSWORD")
        assert SECRET not in made.out + made.err
        cli.ok("--password-env", "SCHOOLS_DB_PASSWORD", "policy")

    def test_a_url_without_a_book_says_how_to_name_one(
        self, cli_database: str, tmp_path: Path
    ) -> None:
        """A URL naming no school is refused, with the form that names one."""
        cli = Cli(tmp_path, book=cli_database)
        assert "?book=SCHOOL_ID" in one_error_line(cli.fails(2, "contacts"))

    def test_a_book_never_made_says_how_to_make_it(self, cli: Cli, cli_database: str) -> None:
        """A command on a book id the database does not hold says so, and how to init it."""
        cli.book = book_url(cli_database, "never-made")
        line = one_error_line(cli.fails(2, "contacts"))
        assert "holds no book never-made" in line
        assert "init" in line

    @on_both
    def test_init_twice_is_refused(self, cli: Cli) -> None:
        """A second init of the same book exits 2, and the first book is untouched."""
        cli.ok("init")
        cli.sync(cli.export("tue"), 24)
        kept = cli.stored()
        assert "already holds" in one_error_line(cli.fails(2, "init"))
        assert cli.stored() == kept

    def test_a_database_book_has_no_json_store(self, cli: Cli, cli_database: str) -> None:
        """init --store json of a database book is refused: the store is the database."""
        cli.book = book_url(cli_database, "json-store")
        assert "kept in the database" in one_error_line(cli.fails(2, "init", "--store", "json"))


class TestOnlyADatabaseBook:
    def test_schools_in_one_database_never_see_each_other(
        self, cli_database: str, tmp_path: Path
    ) -> None:
        """Two books of one database: each lists its own contacts and its own sent messages."""
        one = Cli(tmp_path, book=book_url(cli_database, "one-school"))
        other = Cli(tmp_path, book=book_url(cli_database, "other-school"))
        for book in (one, other):
            book.ok("init")
        one.sync(one.export("tue"), 24)
        one.ok("send", "mis:G1", "--id", "m1", "--body", "x", "--deliver", "--at", when(24, 9))
        assert len(one.ok("contacts", "--at", when(24, 9), "--json").json()) == len(school())
        assert other.ok("contacts", "--at", when(24, 9), "--json").json() == []
        assert "no message 'm1'" in one_error_line(other.fails(2, "why", "m1", "mis:G1"))
        assert not [name for name in other.stored() if name.split("/")[0] in {"audits", "outbox"}]

    def test_a_message_id_that_is_not_text_is_never_kept(
        self, cli_database: str, tmp_path: Path
    ) -> None:
        """An id from a command line that was not UTF-8 was never sent; its audit is refused."""
        url = book_url(cli_database, "not-text")
        cli = Cli(tmp_path, book=url)
        cli.ok("init")
        cli.sync(cli.export("tue"), 24)
        cli.ok("send", "mis:G1", "--id", "m1", "--body", "x", "--deliver", "--at", when(24, 9))
        odd = "trip-\udcff"
        assert "no message" in one_error_line(cli.fails(2, "why", odd, "mis:G1"))
        with DatabaseBook.open(url, environ={}) as book:
            record = book.audit("m1")
            relabelled = attrs.evolve(record, message=attrs.evolve(record.message, id=odd))
            with pytest.raises(UsageError, match="not valid text"):
                book.save_audit(relabelled)
            assert book.sent_ids(10) == ["m1"]

    def test_the_suppression_key_from_a_file_is_used(
        self, cli: Cli, cli_database: str, tmp_path: Path
    ) -> None:
        """With SOURCETRUTH_SUPPRESSION_KEY_FILE set, init keeps the key there, not in the rows."""
        cli.book = book_url(cli_database, "key-in-a-file")
        key = tmp_path / "keys" / "school.key"
        key.parent.mkdir()
        env = {"SOURCETRUTH_SUPPRESSION_KEY_FILE": os.fspath(key)}
        cli.ok("init", environ=env)
        assert key.is_file()
        assert not [row for row in cli.stored().values() if b"suppression.key" in row]
        cli.environ.update(env)
        cli.sync(cli.export("tue"), 24)
        erasing = ("erase", "mis:G6", "--yes", "--at", when(24, 9))
        unset = {"SOURCETRUTH_SUPPRESSION_KEY_FILE": ""}
        assert "no suppression key" in one_error_line(cli.fails(6, *erasing, environ=unset))
        cli.ok(*erasing)


@on_both
def test_the_other_commands(cli: Cli) -> None:
    """journal, recipients, data-quality, override clear, refresh-view and the address book's
    import and export answer alike on a folder and in a database."""
    cli.ok("init")
    cli.sync(cli.export("tue"), 24)
    assert [r["status"] for r in cli.journal()] == ["applied"]
    assert len(cli.ok("journal", "--last", "1", "--json").json()) == 1
    picked = cli.ok("recipients", "--year", "9", "--guardians", "--at", when(24, 9), "--json")
    assert len(picked.json()["deliveries"]) == 3
    assert cli.ok("report", "data-quality", "--at", when(24, 9), "--json").json() is not None
    cli.ok("override", "set", "mis:G2", "given_name", "Hughie", "--at", when(24, 9))
    cli.ok("override", "clear", "mis:G2", "given_name", "--at", when(24, 10))
    assert cli.show("mis:G2", when(24, 11))["data"]["given_name"] == "Hugh"
    cli.ok("address-book", "add", "--key", "cook", "--given", "Ann", "--family", "Cook",
           "--at", when(24, 11))  # fmt: skip
    cards = cli.exports / "cards.vcf"
    cli.ok("address-book", "export", os.fspath(cards), "--at", when(24, 12))
    assert b"Cook" in cards.read_bytes()
    cli.ok("address-book", "import", os.fspath(cards), "--at", when(24, 13))
    done = cli.ok("book", "refresh-view", "--at", when(24, 14))
    assert "Rebuilt the book's current view" in done.out
    assert [r["status"] for r in cli.journal()][-1] == "applied"


class TestMakingABook:
    """What the database answers is read before a new book is said to be made."""

    @pytest.mark.parametrize("make_key", [False, True])
    def test_a_book_made_meanwhile_is_refused_not_overwritten(
        self, cli_database: str, make_key: bool
    ) -> None:
        """A second init that lost the race (its rows there already) is told so, typed."""
        url = book_url(cli_database, f"made-twice-{make_key}".lower())
        DatabaseBook.create(url, environ={}).close()
        with DatabaseBook.open(url, environ={}) as book:
            settings = book._rows.all(
                "SELECT value FROM book_settings WHERE name = ?", "policy.toml"
            )
            with pytest.raises(UsageError, match="already holds the book made-twice"):
                book._write_new(settings[0][0], make_key=make_key)
            assert book._rows.all("SELECT count(*) FROM book_settings") == [(2,)]
