"""A name the book does not hold: one wording in every command, and the nearest it holds.

Only ids and names are compared, and a store's miss reads a few keys of its
indexes, never a whole table.
"""

from __future__ import annotations

import pytest
from cli_helpers import Cli, one_error_line, school, when
from hypothesis import example, given
from hypothesis import strategies as st

from sourcetruth._near import near_ids
from sourcetruth.adapters.stores._rows import Table

AT = ("--at", when(24, 9))
SHAPE = "(an id is SOURCE:KEY, SOURCE one of mis, import, address-book; case matters)"


def refused(book: Cli, *args: str) -> str:
    return one_error_line(book.fails(2, *args))


#: Each command that takes a contact id, given the id ``{}``.
COMMANDS = [
    ("show", "{}", *AT),
    ("explain", "{}", "emails", *AT),
    ("override", "set", "{}", "emails", "a@parent.test", *AT),
    ("override", "clear", "{}", "emails", *AT),
    ("address-book", "edit", "{}", "--given", "X", *AT),
    ("address-book", "remove", "{}", *AT),
    ("erase", "{}", "--yes", *AT),
    ("recipients", "{}", *AT),
    ("send", "{}", "--id", "m", "--body", "x", *AT),
    ("group", "set", "G", "--member", "{}", *AT),
    ("link", "{}", "mis:G2", *AT),
    ("unlink", "{}", *AT),
]


class TestContactIds:
    @pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
    @pytest.mark.parametrize("typed", ["mis:g1", "G1", "mis:G1x", "MIS:G1"])
    def test_every_command_says_the_same(
        self, book: Cli, command: tuple[str, ...], typed: str
    ) -> None:
        """A contact id not held: what an id is, and the id meant, in one wording for all."""
        line = refused(book, *(typed if word == "{}" else word for word in command))
        what = "record" if command[0] in {"link", "unlink"} else "contact"
        shape = SHAPE
        if ":" not in typed and command[0] in {"recipients", "send"}:
            what, shape = "group", f"(a word without ':' names a group; {SHAPE[1:]}"
        assert line.startswith(f"sourcetruth: the book holds no {what} {typed!r} {shape}; ")
        assert line.endswith("did you mean mis:G1?") or "did you mean mis:G1," in line, line

    def test_why_names_the_contact_meant(self, book: Cli) -> None:
        """why, given a contact id not held, says the same."""
        book.ok(
            "send", "--year", "9", "--guardians", "--id", "year9", "--body", "x", "--deliver", *AT
        )
        line = refused(book, "why", "year9", "mis:g1")
        assert line.startswith(f"sourcetruth: the book holds no contact 'mis:g1' {SHAPE}")
        assert "did you mean mis:G1" in line

    def test_a_message_id_not_sent(self, book: Cli) -> None:
        """why, given a message id never sent, offers the nearest sent."""
        book.ok(
            "send", "--year", "9", "--guardians", "--id", "year9", "--body", "x", "--deliver", *AT
        )
        assert refused(book, "why", "yeer9", "mis:G1") == (
            "sourcetruth: no message 'yeer9' was sent from this book; did you mean year9?"
        )
        assert refused(book, "why", "zzz", "mis:G1") == (
            "sourcetruth: no message 'zzz' was sent from this book"
        )

    def test_nothing_near(self, book: Cli) -> None:
        """An id like none held says where to look instead."""
        line = refused(book, "show", "mis:ZZZZZZ", *AT)
        assert line.endswith("; 'sourcetruth contacts --search NAME' finds people")

    def test_never_a_personal_value(self, book: Cli) -> None:
        """A name typed for an id is not matched against names: only ids are compared."""
        line = refused(book, "show", "Okafor", *AT)
        assert "mis:G1" not in line
        assert "mis:P1" not in line

    def test_a_miss_reads_no_whole_table(self, book: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        """A miss on a SQLite book is answered by indexed lookups: no table is read through."""

        def read_through(*args: object) -> object:
            raise AssertionError("a whole table read")

        monkeypatch.setattr(Table, "_pages", read_through)
        assert "did you mean mis:G1" in refused(book, "show", "mis:g1", *AT)
        assert "did you mean mis:G1" in refused(book, "link", "mis:g1", "mis:G2", *AT)

    def test_a_json_book_says_the_same(self, cli: Cli) -> None:
        """A book in the JSON store (held in memory) finds the same ids."""
        cli.ok("init", "--store", "json")
        cli.sync(cli.export("tue"), 24)
        assert refused(cli, "show", "G1", *AT).endswith(f"{SHAPE}; did you mean mis:G1?")


class TestGroupsAndSources:
    def test_a_group_not_held(self, book: Cli) -> None:
        """A group name mistyped: the book's groups, the nearest first offered."""
        book.ok("group", "set", "Staff", "--role", "staff", *AT)
        book.ok("group", "set", "Year 9", "--year", "9", *AT)
        for command in (("recipients", "staff"), ("group", "remove", "staff")):
            assert refused(book, *command, "--at", when(24, 10)) == (
                "sourcetruth: the book holds no group 'staff'; did you mean Staff?"
            )
        assert refused(book, "recipients", "Governors", "--at", when(24, 10)) == (
            "sourcetruth: the book holds no group 'Governors'; its groups are Staff, Year 9"
        )

    def test_a_source_not_held(self, book: Cli) -> None:
        """A source name mistyped: the policy's sources, and the nearest."""
        for command in (
            ("sync", "MIS", "x"),
            ("when", "mis "),
            ("report", "before-next-sync", "ims"),
        ):
            assert "did you mean mis?" in refused(book, *command)


ID = st.text("abAB1:", min_size=1, max_size=5)


@given(held=st.sets(ID, max_size=20), typed=ID)
@example(held={"A:"}, typed="a:")  # an empty key: found by the full run
def test_near_ids_offers_only_ids_held(held: set[str], typed: str) -> None:
    """near_ids offers at most three ids, each held and none the one typed; a case twin first."""
    ids = {i for i in held if ":" in i}
    sources = {i.partition(":")[0] for i in ids}
    keys = sorted(ids)

    def around(source: str, key: str) -> list[str]:
        prefix = f"{source}:"
        return [i[len(prefix) :] for i in keys if i.startswith(prefix)]

    found = near_ids(typed, sources, lambda s, k: f"{s}:{k}" in ids, around)
    assert len(found) <= 3
    assert set(found) <= ids - {typed}
    twins = [i for i in ids if i != typed and i.casefold() == typed.casefold()]
    if ":" in typed and twins and typed.upper() in ids:
        assert found[0] in twins


class TestEmptySelection:
    def test_a_year_group_no_one_is_in(self, book: Cli) -> None:
        """--year 13 with no year 13: refused, listing the year groups there are."""
        for command in (
            ("recipients", "--year", "13"),
            ("send", "--year", "13", "--guardians", "--id", "m", "--body", "x", "--deliver"),
        ):
            assert refused(book, *command, *AT) == (
                "sourcetruth: no contact is in year group '13' (year groups: 8, 9)"
            )
        assert not (book.folder / "audit").exists()

    def test_registration_groups_and_roles(self, book: Cli) -> None:
        """A registration group or role no one has: the values there are, a near one offered."""
        assert refused(book, "recipients", "--reg", "9a", *AT) == (
            "sourcetruth: no contact is in registration group '9a' "
            "(no contact has a registration group)"
        )
        book.ok("address-book", "add", "--given", "Ann", "--reg", "9A", "--role", "staff", *AT)
        at = ("--at", when(24, 10))
        assert refused(book, "recipients", "--reg", "9a", "--reg", "9b", *at) == (
            "sourcetruth: no contact is in registration group '9a' or '9b' "
            "(registration groups: 9A); did you mean 9A?"
        )
        assert refused(book, "recipients", "--role", "governor", *at) == (
            "sourcetruth: no contact has role 'governor' (roles: guardian, pupil, staff)"
        )

    def test_only_present_contacts_count(self, book: Cli) -> None:
        """A year group whose pupils have all departed is no longer listed."""
        book.sync(book.export("wed", school(P4=None, P5=None, P6=None)), 25)
        line = refused(book, "recipients", "--year", "8", "--at", when(25, 9))
        assert line.endswith("(year groups: 9)")

    def test_parts_that_match_but_not_together(self, book: Cli) -> None:
        """Each part matching someone, but nobody all: exit 0, and a notice says why it is empty."""
        ran = book.ok("recipients", "--role", "staff", "--year", "9", *AT)
        assert ran.out == "0 address(es) reach 0 contact(s); 0 unreachable.\n"
        assert ran.err.startswith("notice: the rule selects nobody: each of its parts matches")

    def test_a_rule_beside_contact_ids_is_not_refused(self, book: Cli) -> None:
        """An audience naming people as well reaches them: its rule is not checked alone."""
        ran = book.ok("recipients", "mis:G1", "--year", "13", *AT)
        assert "reach 1 contact(s)" in ran.out

    def test_read_by_the_indexes(self, book: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        """The values there are come from the view's indexes: no table is read through."""

        def read_through(*args: object) -> object:
            raise AssertionError("a whole table read")

        monkeypatch.setattr(Table, "_pages", read_through)
        assert refused(book, "recipients", "--year", "13", *AT).endswith("(year groups: 8, 9)")

    def test_a_json_book_says_the_same(self, cli: Cli) -> None:
        """A book in the JSON store lists the same values."""
        cli.ok("init", "--store", "json")
        cli.sync(cli.export("tue"), 24)
        assert refused(cli, "recipients", "--year", "13", *AT).endswith("(year groups: 8, 9)")
