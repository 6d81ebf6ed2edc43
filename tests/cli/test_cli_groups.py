"""Who belongs together: groups across homes (scenario 6), and two feeds linked (scenario 7)."""

from __future__ import annotations

import os

from cli_helpers import Cli, governor_card, on_both, one_error_line, when


class TestGroups:
    @on_both
    def test_scenario_6_a_group_across_homes(self, book: Cli) -> None:
        """Scenario 6: a group of a staff, a parent and an external governor reaches all three."""
        cards = book.exports / "governors.vcf"
        cards.write_text(governor_card(), encoding="utf-8")
        book.ok("address-book", "import", os.fspath(cards), "--at", when(24, 9))
        ran = book.ok(
            "group",
            "set",
            "Governors",
            "--member",
            "mis:S1",
            "--member",
            "mis:G3",
            "--member",
            "address-book:gov-la",
            "--at",
            when(24, 10),
        )
        assert ran.out == "Group Governors saved.\n"
        listed = book.ok("groups", "--at", when(24, 11)).out
        assert listed == ("Governors: members address-book:gov-la, mis:G3, mis:S1\n1 group(s).\n")
        plan = book.ok(
            "recipients",
            "Governors",
            "--channel",
            "email",
            "--channel",
            "sms",
            "--each",
            "--at",
            when(24, 11),
            "--json",
        ).json()
        reached = {(d["channel"], d["address"]) for d in plan["deliveries"]}
        assert reached == {
            ("email", "sam@school.example.org"),
            ("email", "ines@parent.test"),
            ("email", "aoife@example.org"),
            ("sms", "+447700900201"),
            ("sms", "+447700900103"),
            ("sms", "+447700900301"),
        }
        first = book.ok(
            "recipients",
            "Governors",
            "--channel",
            "email",
            "--channel",
            "sms",
            "--at",
            when(24, 11),
        )
        assert first.out.endswith("3 address(es) reach 3 contact(s); 0 unreachable.\n")

    def test_a_rule_group(self, book: Cli) -> None:
        """A rule group lists as its rule and reaches the guardians of year 9 only."""
        book.ok("group", "set", "Year 9 parents", "--year", "9", "--guardians", "--at", when(24, 9))
        groups = book.ok("groups", "--at", when(24, 10), "--json").json()
        assert groups == [
            {
                "name": "Year 9 parents",
                "members": [],
                "rule": {
                    "roles": [],
                    "year_groups": ["9"],
                    "registration_groups": [],
                    "guardians_of": True,
                    "max_priority": None,
                },
            }
        ]
        text = book.ok("groups", "--at", when(24, 10)).out
        assert "Year 9 parents: rule: guardians of pupils in year 9\n" in text
        out = book.ok("recipients", "Year 9 parents", "--channel", "sms", "--at", when(24, 10)).out
        assert "+447700900101" in out
        assert "+447700900103" in out
        assert "+447700900104" not in out  # year 8

    def test_recipients_of_a_rule(self, book: Cli) -> None:
        """recipients of a rule gives each address and the sync it came from, as text and JSON."""
        plan = book.ok(
            "recipients",
            "--year",
            "9",
            "--guardians",
            "--channel",
            "sms",
            "--at",
            when(24, 9),
            "--json",
        ).json()
        assert [d["address"] for d in plan["deliveries"]] == [
            "+447700900101",
            "+447700900102",
            "+447700900103",
        ]
        for delivery in plan["deliveries"]:
            (provenance,) = delivery["provenance"]
            assert provenance["source"] == "mis"
            assert provenance["sync"] == 1
        text = book.ok(
            "recipients", "--year", "9", "--guardians", "--channel", "sms", "--at", when(24, 9)
        ).out
        assert "  sms   +447700900101  (mis:G1)\n" in text
        assert "        from mis:G1, sync 1 (read Tue 24 Nov 2026 01:30" in text

    def test_remove_and_mistakes(self, book: Cli) -> None:
        """A removed group is gone after, still there before; group and audience mistakes exit 2."""
        at = ("--at", when(24, 9))
        book.ok("group", "set", "Staff", "--role", "staff", *at)
        assert book.ok("group", "remove", "Staff", "--at", when(24, 10)).out.startswith(
            "Group Staff removed."
        )
        assert book.ok("groups", "--at", when(24, 11)).out == "0 group(s).\n"
        assert book.ok("groups", "--at", when(24, 9, 30)).out.startswith("Staff: rule: role staff")
        assert "the book holds no group 'Staff'; it has no groups" in one_error_line(
            book.fails(2, "group", "remove", "Staff", "--at", when(24, 12))
        )
        assert "needs --member" in one_error_line(book.fails(2, "group", "set", "Empty", *at))
        assert "mis:NOBODY" in one_error_line(
            book.fails(2, "group", "set", "X", "--member", "mis:NOBODY", "--at", when(24, 12))
        )
        assert "--max-priority goes with --guardians" in one_error_line(
            book.fails(2, "group", "set", "X", "--member", "mis:G1", "--max-priority", "1")
        )
        assert "name an audience" in one_error_line(book.fails(2, "recipients"))
        assert "the book holds no group 'Nope'" in one_error_line(
            book.fails(2, "recipients", "Nope", "--at", when(24, 12))
        )


class TestTwoFeeds:
    def test_scenario_7_reported_never_merged_then_linked(self, book: Cli) -> None:
        """Scenario 7: a person in both feeds is reported, reached once, and merged only by link."""
        book.enable_import()
        path = book.csv(
            "parents.csv",
            "Id,First name,Surname,Mobile,Email\n"
            "C1,Gita,Okafor,07700 900101,gita.work@example.org\n",
        )
        ran = book.ok("sync", "import", path, "--at", when(24, 10), "--extracted-at", when(24, 9))
        assert "possible duplicate: import:C1 and mis:G1" in ran.out
        report = book.ok("report", "two-feeds")
        assert "  import:C1 and mis:G1: " in report.out
        assert report.out.endswith("1 possible duplicate(s); link them with 'sourcetruth link'.\n")
        # Both stay; a message to both reaches the shared number once.
        plan = book.ok(
            "recipients", "mis:G1", "import:C1", "--channel", "sms", "--at", when(24, 11), "--json"
        ).json()
        (delivery,) = plan["deliveries"]
        assert delivery["address"] == "+447700900101"
        assert sorted(delivery["contact_ids"]) == ["import:C1", "mis:G1"]

        ran = book.ok("link", "mis:G1", "import:C1", "--at", when(24, 12))
        assert ran.out.startswith("Linked mis:G1 and import:C1.")
        assert book.ok("report", "two-feeds", "--json").json() == []
        shown = book.show("mis:G1", when(24, 13))
        assert [e["address"] for e in shown["data"]["emails"]] == ["gita@parent.test"]
        assert shown["provenance"]["emails"]["source"] == "mis"
        ids = [c["id"] for c in book.ok("contacts", "--at", when(24, 13), "--json").json()]
        assert "import:C1" not in ids

        ran = book.ok("unlink", "import:C1", "--at", when(24, 14), "--json")
        assert ran.json()["status"] == "applied"
        assert book.show("import:C1", when(24, 15))["home"] == "import:C1"
        assert len(book.ok("report", "two-feeds", "--json").json()) == 1

    @on_both
    def test_mistakes(self, book: Cli) -> None:
        """Linking two records of one source, or unlinking one never linked, is refused."""
        assert "one source cannot hold one person twice" in one_error_line(
            book.fails(2, "link", "mis:G1", "mis:G2", "--at", when(24, 9))
        )
        assert "not linked" in one_error_line(
            book.fails(2, "unlink", "mis:G1", "--at", when(24, 9))
        )
