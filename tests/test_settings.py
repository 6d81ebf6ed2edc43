"""The settings file (``policy.toml``): every documented key, and every kind of mistake.

A mistake is a :class:`SourceDataError` naming the file and the key path at
fault, and its message never repeats a value found in the file: a phone
number typed into the wrong place must not end up in a log.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import budget
from sourcetruth.app import settings as settings_module
from sourcetruth.app.settings import (
    STARTER,
    Settings,
    SourceSettings,
    TransportSettings,
    check_adapters,
    parse_settings,
    read_mapping,
)
from sourcetruth.exceptions import SourceDataError
from sourcetruth.model import FIELDS, Channel, SourceKind
from sourcetruth.policy import DEFAULT_GUARD, DepartureGuard, Schedule
from sourcetruth.testing import strategies as sts

FILE = "school-policy.toml"
# A value that would be personal if it leaked: an Ofcom drama number, typed as people type.
PHONE = "07700 900123"
PHONE_FORMS = (PHONE, "07700900123", "7700900123", "900123")

MINIMAL = '[sources.mis]\nkind = "mis"\n'


def documented_example() -> str:
    """The example in the settings module's docstring, as a user would copy it."""
    doc = settings_module.__doc__
    assert doc is not None
    block = doc.split(".. code-block:: toml", 1)[1]
    return textwrap.dedent(block)


def parse(text: str, **kwargs: object) -> Settings:
    return parse_settings(text, file=FILE, **kwargs)  # type: ignore[arg-type]


def failure(text: str) -> SourceDataError:
    with pytest.raises(SourceDataError) as caught:
        parse(text)
    error = caught.value
    assert error.file == FILE
    return error


def attempt(text: str) -> Settings | SourceDataError:
    """The settings, or the error they raise: nothing else may come out."""
    try:
        return parse(text)
    except SourceDataError as error:
        return error


def assert_no_phone(error: BaseException) -> None:
    said = f"{error} {getattr(error, 'reason', '')} {getattr(error, 'field', '')}"
    compact = said.replace(" ", "")
    for form in PHONE_FORMS:
        assert form not in said
        assert form.replace(" ", "") not in compact


def with_source(extra: str, *, head: str = "") -> str:
    """A file with one MIS source, *extra* lines in its table, and *head* before it."""
    return f'{head}\n[sources.mis]\nkind = "mis"\n{extra}\n'


# --------------------------------------------------------------------------
# What parses


FIELDS_ONEROSTER_READS = frozenset(FIELDS) - {"registration_group"}


class TestStarter:
    def test_the_starter_parses_into_the_policy_it_describes(self) -> None:
        """The starter file parses into the policy it describes.

        London time and region GB; the MIS (OneRoster, nightly at 02:00) before
        a CSV import of names, phones and emails; a guard of 500, 20% and 5; no
        transports.
        """
        parsed = parse(STARTER)
        policy = parsed.policy
        assert parsed.timezone == ZoneInfo("Europe/London")
        assert policy.default_region == "GB"
        assert policy.precedence == ("mis", "import")
        assert policy.order == ("mis", "import", "address-book")
        assert policy.guard == DepartureGuard(max_count=500, max_fraction=0.2, min_count=5)
        mis, imported = policy.source("mis"), policy.source("import")
        assert mis.kind is SourceKind.MIS
        assert mis.covers == FIELDS_ONEROSTER_READS
        assert mis.schedule == Schedule("FREQ=DAILY;BYHOUR=2;BYMINUTE=0", "Europe/London")
        assert imported.kind is SourceKind.IMPORT
        assert imported.covers == frozenset({"given_name", "family_name", "phones", "emails"})
        assert imported.schedule is None
        assert parsed.sources == {
            "mis": SourceSettings("mis", "oneroster", {}, None),
            "import": SourceSettings("import", "csv", {}, None),
        }
        assert parsed.transports == {}

    def test_the_policy_has_no_suppression_key_from_the_file(self) -> None:
        """A policy read from the settings alone has an empty suppression key."""
        # The key lives in its own file; the settings never carry it.
        assert parse(STARTER).policy.suppression_key == ""


class TestDocumentedKeys:
    def test_the_documented_example_parses_with_every_key(self, tmp_path: Path) -> None:
        """The example in the settings module's docstring parses, every key taking effect.

        Its mapping is found under the base folder, and its SMTP transport
        keeps every option as written, password_env included.
        """
        parsed = parse(documented_example(), base=tmp_path)
        policy = parsed.policy
        assert parsed.timezone.key == "Europe/London"
        assert policy.default_region == "GB"
        assert policy.precedence == ("mis", "import")
        assert policy.guard == DepartureGuard(500, 0.2, 5)
        assert policy.source("mis").schedule == Schedule(
            "FREQ=DAILY;BYHOUR=2;BYMINUTE=0", "Europe/London"
        )
        assert parsed.sources["mis"] == SourceSettings("mis", "oneroster", {"org": "org-1"})
        assert parsed.sources["import"] == SourceSettings(
            "import", "csv", {}, tmp_path / "mapping.toml"
        )
        assert policy.source("import").covers == {"given_name", "family_name", "phones", "emails"}
        assert parsed.transports == {
            Channel.EMAIL: TransportSettings(
                Channel.EMAIL,
                "smtp",
                {
                    "host": "smtp.example.org",
                    "sender": "office@school.example.org",
                    "username": "office",
                    "password_env": "SMTP_PASSWORD",
                },
            )
        }

    def test_defaults_for_a_file_that_names_only_a_source(self) -> None:
        """A file that names only one source gets every default.

        London time, region GB, no precedence and DEFAULT_GUARD; the source
        covers every field, has no schedule and no adapter; there are no
        transports.
        """
        parsed = parse(MINIMAL)
        assert parsed.timezone == ZoneInfo("Europe/London")
        assert parsed.policy.default_region == "GB"
        assert parsed.policy.precedence == ()
        assert parsed.policy.guard == DEFAULT_GUARD
        source = parsed.policy.source("mis")
        assert source.covers == frozenset(FIELDS)
        assert source.schedule is None
        assert parsed.sources == {"mis": SourceSettings("mis")}
        assert parsed.transports == {}

    def test_the_timezone_is_the_schedules_timezone(self) -> None:
        """The file's timezone is the settings' timezone, and the one its schedules run in."""
        text = with_source('schedule = "FREQ=WEEKLY;BYDAY=MO"', head='timezone = "Asia/Tokyo"')
        parsed = parse(text)
        assert parsed.timezone == ZoneInfo("Asia/Tokyo")
        assert parsed.policy.source("mis").schedule == Schedule(
            "FREQ=WEEKLY;BYDAY=MO", "Asia/Tokyo"
        )

    @pytest.mark.parametrize("region", ["GB", "IE", "US", "FR"])
    def test_the_region_is_the_policys_phone_region(self, region: str) -> None:
        """The region key becomes the policy's default phone region, whatever the country."""
        assert parse(with_source("", head=f'region = "{region}"')).policy.default_region == region

    def test_the_guard_can_be_switched_off(self) -> None:
        """enabled = false switches the guard off: it never trips, even when all depart."""
        text = with_source("", head="[guard]\nenabled = false\nmax_count = 0\nmin_count = 0")
        guard = parse(text).policy.guard
        assert guard == DepartureGuard(max_count=0, min_count=0, enabled=False)
        assert not guard.trips(1000, 1000)

    @pytest.mark.parametrize("fraction", ["0", "1", "0.5", "1.0"])
    def test_a_fraction_may_be_written_as_a_whole_number_or_a_float(self, fraction: str) -> None:
        """max_fraction may be a TOML integer or float, from 0 to 1 inclusive."""
        text = with_source("", head=f"[guard]\nmax_fraction = {fraction}")
        assert parse(text).policy.guard.max_fraction == float(fraction)

    def test_covers_can_name_any_field(self) -> None:
        """A source's covers may list every field of ContactData."""
        covers = json.dumps(list(FIELDS))
        assert parse(with_source(f"covers = {covers}")).policy.source("mis").covers == set(FIELDS)

    def test_a_source_may_cover_nothing(self) -> None:
        """covers = [] is accepted: the source covers no field at all."""
        assert parse(with_source("covers = []")).policy.source("mis").covers == frozenset()

    def test_a_source_may_be_an_import_with_a_schedule(self) -> None:
        """An import source may have a schedule, which runs in the default London time."""
        text = '[sources.nightly-csv]\nkind = "import"\nschedule = "FREQ=HOURLY"\n'
        source = parse(text).policy.source("nightly-csv")
        assert source.kind is SourceKind.IMPORT
        assert source.schedule == Schedule("FREQ=HOURLY", "Europe/London")

    def test_precedence_may_end_with_the_address_book(self) -> None:
        """The precedence may name the address book last, and the order is as written."""
        text = with_source("", head='precedence = ["mis", "address-book"]')
        assert parse(text).policy.order == ("mis", "address-book")

    def test_sources_left_out_of_the_precedence_follow_in_file_order(self) -> None:
        """Sources left out of the precedence follow it in file order, then the address book."""
        text = (
            'precedence = ["b"]\n[sources.a]\nkind = "mis"\n'
            '[sources.b]\nkind = "import"\n[sources.c]\nkind = "import"\n'
        )
        assert parse(text).policy.order == ("b", "a", "c", "address-book")

    def test_a_mapping_is_relative_to_the_base_folder(self, tmp_path: Path) -> None:
        """A relative mapping path is taken from the base folder, or kept as is without one."""
        text = with_source('mapping = "maps/import.toml"')
        assert parse(text, base=tmp_path).sources["mis"].mapping == tmp_path / "maps/import.toml"
        assert parse(text).sources["mis"].mapping == Path("maps/import.toml")

    @pytest.mark.parametrize(
        "mapping",
        ["/etc/passwd", "../x", "../book-next-door/mapping.toml", "maps/../../x", "..", "./../x"],
    )
    @pytest.mark.parametrize("with_base", [True, False])
    def test_a_mapping_outside_the_folder_is_refused(
        self, tmp_path: Path, mapping: str, with_base: bool
    ) -> None:
        """F17: an absolute mapping, or one leading out of the book folder, names the key only."""
        text = with_source(f"mapping = {json.dumps(mapping)}")
        with pytest.raises(SourceDataError) as caught:
            parse(text, base=tmp_path / "book" if with_base else None)
        assert caught.value.field == "sources.mis.mapping"
        assert mapping not in str(caught.value)
        assert "book folder" in caught.value.reason

    @pytest.mark.parametrize("folder", ["/tmp/outbox", "../outbox", "held/../../outbox"])
    def test_an_outbox_folder_outside_the_book_folder_is_refused(
        self, tmp_path: Path, folder: str
    ) -> None:
        """F17: an outbox's folder, documented as relative to the book folder, stays inside it."""
        text = with_source(
            "", head=f'[transports.sms]\nadapter = "outbox"\nfolder = {json.dumps(folder)}\n'
        )
        with pytest.raises(SourceDataError) as caught:
            parse(text, base=tmp_path)
        assert caught.value.field == "transports.sms.folder"
        assert folder not in str(caught.value)

    def test_a_link_out_of_the_folder_is_refused(self, tmp_path: Path) -> None:
        """F17: a mapping reached through a link that leads out of the book folder is refused."""
        book = tmp_path / "book"
        book.mkdir()
        (tmp_path / "elsewhere").mkdir()
        (book / "maps").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(SourceDataError) as caught:
            parse(with_source('mapping = "maps/import.toml"'), base=book)
        assert caught.value.field == "sources.mis.mapping"

    @pytest.mark.parametrize("mapping", ["mapping.toml", "maps/import.toml", "maps/../m.toml"])
    def test_a_mapping_inside_the_folder_is_taken(self, tmp_path: Path, mapping: str) -> None:
        """F17: a path that stays inside the book folder is taken, relative to it."""
        text = with_source(f"mapping = {json.dumps(mapping)}")
        assert parse(text, base=tmp_path).sources["mis"].mapping == tmp_path / mapping

    def test_adapter_options_are_kept_as_written(self) -> None:
        """A source's adapter and options come through as written, with their TOML types."""
        text = with_source(
            'adapter = "oneroster"\n'
            'options = { org = "org-1", allow_cp1252 = true, max_reject_fraction = 0.01 }'
        )
        how = parse(text).sources["mis"]
        assert how.adapter == "oneroster"
        assert how.options == {"org": "org-1", "allow_cp1252": True, "max_reject_fraction": 0.01}

    def test_every_channel_can_have_a_transport(self) -> None:
        """Email and SMS may each have a transport; its keys other than adapter are its options."""
        text = with_source(
            "",
            head=(
                '[transports.email]\nadapter = "smtp"\nhost = "smtp.example.org"\n'
                '[transports.sms]\nadapter = "sms-http"\nurl = "https://sms.example.org/send"\n'
                'sender = "School"\ntoken_env = "SMS_TOKEN"\n'
            ),
        )
        transports = parse(text).transports
        assert set(transports) == set(Channel)
        assert transports[Channel.SMS] == TransportSettings(
            Channel.SMS,
            "sms-http",
            {"url": "https://sms.example.org/send", "sender": "School", "token_env": "SMS_TOKEN"},
        )
        assert transports[Channel.EMAIL].options == {"host": "smtp.example.org"}

    def test_keys_may_come_in_any_order_and_as_inline_tables(self) -> None:
        """Sources and the guard may be inline tables, and top-level keys may come in any order."""
        text = (
            "sources = { mis = { kind = 'mis', covers = ['phones'] } }\n"
            "guard = { max_count = 7 }\nregion = 'IE'\n"
        )
        parsed = parse(text)
        assert parsed.policy.source("mis").covers == {"phones"}
        assert parsed.policy.guard.max_count == 7
        assert parsed.policy.default_region == "IE"


# --------------------------------------------------------------------------
# What does not


# (the file's text, the key path the error must name). Wherever a value can be
# wrong, the wrong value is a phone number: no error may repeat it.
MISTAKES = [
    # keys nobody knows
    pytest.param(with_source("", head=f'timezon = "{PHONE}"'), "timezon", id="top-level-typo"),
    pytest.param(with_source(f'kinds = "{PHONE}"'), "sources.mis.kinds", id="source-key-typo"),
    pytest.param(with_source(f'option = {{ org = "{PHONE}" }}'), "sources.mis.option", id="opts"),
    pytest.param(with_source("", head=f'[guard]\nmax = "{PHONE}"'), "guard.max", id="guard-typo"),
    # timezone and region
    pytest.param(with_source("", head=f'timezone = "{PHONE}"'), "timezone", id="tz-phone"),
    pytest.param(with_source("", head='timezone = "Europe/Londn"'), "timezone", id="tz-typo"),
    pytest.param(with_source("", head='timezone = "Europe"'), "timezone", id="tz-folder"),
    pytest.param(with_source("", head='timezone = "../../etc/passwd"'), "timezone", id="tz-path"),
    pytest.param(with_source("", head=f'timezone = "{"x" * 300}"'), "timezone", id="tz-long"),
    pytest.param(with_source("", head='timezone = ""'), "timezone", id="tz-empty"),
    pytest.param(with_source("", head="timezone = 0"), "timezone", id="tz-number"),
    pytest.param(with_source("", head=f'region = "{PHONE}"'), "region", id="region-phone"),
    pytest.param(with_source("", head='region = "UK"'), "region", id="region-uk"),
    pytest.param(with_source("", head='region = "gb"'), "region", id="region-lowercase"),
    pytest.param(with_source("", head="region = 44"), "region", id="region-number"),
    # sources
    pytest.param('timezone = "Europe/London"\n', "sources", id="no-sources"),
    pytest.param("[sources]\n", "sources", id="empty-sources"),
    pytest.param(f'sources = "{PHONE}"\n', "sources", id="sources-not-table"),
    pytest.param(f'[sources]\nmis = "{PHONE}"\n', "sources.mis", id="source-not-table"),
    pytest.param("[sources.mis]\n", "sources.mis.kind", id="no-kind"),
    pytest.param(f'[sources.mis]\nkind = "{PHONE}"\n', "sources.mis.kind", id="bad-kind"),
    pytest.param('[sources.mis]\nkind = "MIS"\n', "sources.mis.kind", id="kind-case"),
    pytest.param("[sources.mis]\nkind = 1\n", "sources.mis.kind", id="kind-number"),
    pytest.param(
        '[sources.mis]\nkind = "address-book"\n', "sources.mis.kind", id="kind-address-book"
    ),
    pytest.param(
        '[sources.address-book]\nkind = "address-book"\n',
        "sources.address-book",
        id="address-book-listed",
    ),
    pytest.param(
        '[sources.address-book]\nkind = "mis"\n', "sources.address-book", id="address-book-name"
    ),
    pytest.param('[sources."a:b"]\nkind = "mis"\n', "sources.a:b", id="name-with-colon"),
    pytest.param(with_source(f'covers = "{PHONE}"'), "sources.mis.covers", id="covers-text"),
    pytest.param(with_source(f'covers = ["{PHONE}"]'), "sources.mis.covers", id="covers-phone"),
    pytest.param(with_source('covers = ["phone"]'), "sources.mis.covers", id="covers-typo"),
    pytest.param(with_source("covers = [1]"), "sources.mis.covers", id="covers-number"),
    pytest.param(with_source(f'schedule = "{PHONE}"'), "sources.mis.schedule", id="rrule-phone"),
    pytest.param(
        with_source('schedule = "FREQ=DAILY;BYHOUR=25"'), "sources.mis.schedule", id="rrule-hour"
    ),
    pytest.param(with_source('schedule = "FREQ=DAYLY"'), "sources.mis.schedule", id="rrule-freq"),
    pytest.param(
        with_source('schedule = "FREQ=DAILY;INTERVAL=0"'),
        "sources.mis.schedule",
        id="rrule-interval-0",
    ),
    pytest.param(
        with_source('schedule = "freq=daily;interval=00"'),
        "sources.mis.schedule",
        id="rrule-interval-00",
    ),
    pytest.param(
        with_source('schedule = "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"'),
        "sources.mis.schedule",
        id="rrule-never",
    ),
    pytest.param(with_source('schedule = ""'), "sources.mis.schedule", id="rrule-empty"),
    # A nightly sync does not end: a rule that runs out would leave "when will it show?"
    # without an answer, and a policy that fails at its first question.
    pytest.param(
        with_source('schedule = "FREQ=DAILY;COUNT=1"'), "sources.mis.schedule", id="rrule-count"
    ),
    pytest.param(
        with_source('schedule = "FREQ=DAILY;BYHOUR=2;UNTIL=20200101T000000"'),
        "sources.mis.schedule",
        id="rrule-until-past",
    ),
    pytest.param(
        with_source('schedule = "freq=daily;until=20991231"'),
        "sources.mis.schedule",
        id="rrule-until-future",
    ),
    pytest.param(
        with_source('schedule = "RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO"'),
        "sources.mis.schedule",
        id="rrule-prefixed-count",
    ),
    pytest.param(with_source("schedule = 2"), "sources.mis.schedule", id="rrule-number"),
    pytest.param(with_source(f'options = "{PHONE}"'), "sources.mis.options", id="options-text"),
    pytest.param(with_source("mapping = 1"), "sources.mis.mapping", id="mapping-number"),
    pytest.param(with_source("adapter = true"), "sources.mis.adapter", id="adapter-bool"),
    pytest.param(with_source('adapter = " "'), "sources.mis.adapter", id="adapter-blank"),
    # precedence
    pytest.param(with_source("", head=f'precedence = "{PHONE}"'), "precedence", id="prec-text"),
    pytest.param(with_source("", head="precedence = [1]"), "precedence", id="prec-number"),
    pytest.param(
        with_source("", head=f'precedence = ["mis", "{PHONE}"]'), "precedence", id="prec-unknown"
    ),
    pytest.param(
        with_source("", head='precedence = ["mis", "mis"]'), "precedence", id="prec-twice"
    ),
    pytest.param(
        with_source("", head='precedence = ["address-book", "mis"]'),
        "precedence",
        id="prec-address-book-first",
    ),
    # the guard
    pytest.param(with_source("", head=f"guard = {PHONE!r}"), "guard", id="guard-text"),
    pytest.param(
        with_source("", head=f'[guard]\nmax_count = "{PHONE}"'), "guard.max_count", id="count"
    ),
    pytest.param(with_source("", head="[guard]\nmax_count = -1"), "guard.max_count", id="neg"),
    pytest.param(with_source("", head="[guard]\nmax_count = 1.5"), "guard.max_count", id="frac"),
    pytest.param(with_source("", head="[guard]\nmax_count = true"), "guard.max_count", id="bool"),
    pytest.param(with_source("", head="[guard]\nmin_count = -5"), "guard.min_count", id="min"),
    pytest.param(
        with_source("", head="[guard]\nmax_fraction = 1.5"), "guard.max_fraction", id="over-1"
    ),
    pytest.param(
        with_source("", head="[guard]\nmax_fraction = -0.1"), "guard.max_fraction", id="under-0"
    ),
    pytest.param(
        with_source("", head="[guard]\nmax_fraction = nan"), "guard.max_fraction", id="nan"
    ),
    pytest.param(
        with_source("", head="[guard]\nmax_fraction = inf"), "guard.max_fraction", id="inf"
    ),
    pytest.param(
        with_source("", head=f'[guard]\nmax_fraction = "{PHONE}"'),
        "guard.max_fraction",
        id="fraction-text",
    ),
    pytest.param(
        with_source("", head="[guard]\nmax_fraction = false"), "guard.max_fraction", id="f-bool"
    ),
    pytest.param(
        with_source("", head='[guard]\nenabled = "no"'), "guard.enabled", id="enabled-text"
    ),
    pytest.param(with_source("", head="[guard]\nenabled = 0"), "guard.enabled", id="enabled-0"),
    # transports
    pytest.param(
        with_source("", head='[transports.fax]\nadapter = "smtp"'), "transports.fax", id="fax"
    ),
    pytest.param(
        with_source("", head='[transports.SMS]\nadapter = "sms-http"'),
        "transports.SMS",
        id="channel-case",
    ),
    pytest.param(
        with_source("", head=f'[transports.sms]\nurl = "{PHONE}"'),
        "transports.sms.adapter",
        id="no-adapter",
    ),
    pytest.param(
        with_source("", head="[transports.sms]\nadapter = 3"), "transports.sms.adapter", id="a3"
    ),
    pytest.param(
        with_source("", head='[transports.sms]\nadapter = "sms-http"\ntoken_env = 3'),
        "transports.sms.token_env",
        id="env-not-text",
    ),
    pytest.param(
        with_source("", head='[transports.sms]\nadapter = "sms-http"\ntoken_env = ""'),
        "transports.sms.token_env",
        id="env-empty",
    ),
    pytest.param(
        with_source(
            "",
            head=f'[transports.sms]\nadapter = "sms-http"\ntoken = "{PHONE}"\ntoken_env = "T"',
        ),
        "transports.sms.token_env",
        id="secret-and-env",
    ),
    pytest.param(with_source("", head=f"transports = {PHONE!r}"), "transports", id="t-text"),
    pytest.param(
        with_source("", head=f"[transports]\nsms = {PHONE!r}"), "transports.sms", id="t-sms-text"
    ),
]


@pytest.mark.parametrize(("text", "where"), MISTAKES)
def test_a_mistake_names_the_file_and_the_key_and_never_the_value(text: str, where: str) -> None:
    """Each mistake is a SourceDataError naming the file and key path and why, never the value."""
    error = failure(text)
    assert error.field == where
    assert error.line is None
    assert FILE in str(error)
    assert where in str(error)
    assert error.reason  # says what is wrong, not only where
    assert_no_phone(error)


def test_an_unknown_key_lists_the_keys_that_are_known() -> None:
    """An unknown key in a source is reported with every key a source may have."""
    error = failure(with_source('kinds = "mis"'))
    for key in ("kind", "covers", "schedule", "adapter", "options", "mapping"):
        assert key in error.reason


def test_an_unknown_channel_lists_the_channels() -> None:
    """A transport for an unknown channel is reported with the channels there are."""
    error = failure(with_source("", head='[transports.fax]\nadapter = "x"'))
    assert "email" in error.reason
    assert "sms" in error.reason


def test_a_bad_kind_lists_the_kinds_but_not_the_address_book() -> None:
    """A bad kind lists mis and import, but not address-book, which no file may declare."""
    error = failure('[sources.mis]\nkind = "school"\n')
    assert "mis" in error.reason
    assert "import" in error.reason
    assert "address-book" not in error.reason


def test_an_unknown_precedence_entry_is_named_by_position() -> None:
    """An unknown name in the precedence is named by its position, not by its value."""
    error = failure(with_source("", head=f'precedence = ["mis", "{PHONE}"]'))
    assert "entry 2" in error.reason


def test_a_missing_kind_says_it_is_required() -> None:
    """A source without a kind is told that kind is required."""
    assert "required" in failure("[sources.mis]\n").reason


@pytest.mark.parametrize("part", ["COUNT=1", "UNTIL=20200101T000000Z"])
def test_a_schedule_that_ends_says_which_part_to_leave_out(part: str) -> None:
    """A schedule that ends, by COUNT or UNTIL, is refused with advice to leave that part out."""
    error = failure(with_source(f'schedule = "FREQ=DAILY;BYHOUR=2;{part}"'))
    assert error.field == "sources.mis.schedule"
    assert f"leave {part.split('=')[0]} out" in error.reason


def test_a_schedule_may_name_counts_in_other_parts() -> None:
    """Only COUNT and UNTIL end a schedule: a rule with BYSETPOS=-1 is accepted."""
    # BYSETPOS and friends are not COUNT: only the parts that end the rule are refused.
    text = with_source('schedule = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"')
    assert parse(text).policy.source("mis").schedule is not None


class TestTomlSyntax:
    @pytest.mark.parametrize(
        ("text", "line"),
        [
            (f"region = {PHONE}\n", 1),
            (f'timezone = "Europe/London"\nregion = "GB\n[sources.mis]\nkind = "{PHONE}"\n', 2),
            ('[sources.mis]\nkind = "mis"\n[sources.mis]\nkind = "import"\n', 3),
            (f'[sources.mis]\nkind = "mis"\nkind = "{PHONE}"\n', 3),
            (f'a = {{ b = "{PHONE}", b = 1 }}\n', 1),
        ],
        ids=["bare-value", "unterminated", "table-twice", "key-twice", "inline-twice"],
    )
    def test_a_syntax_error_names_the_file_and_line(self, text: str, line: int | None) -> None:
        """Invalid TOML, a repeated table or key too, names the file and line, never the value."""
        error = failure(text)
        assert error.reason.startswith("not valid TOML")
        assert error.field is None
        assert error.line == line
        assert_no_phone(error)

    @pytest.mark.parametrize("character", ["\x01", "\x7f", "\x1b"])
    def test_the_character_found_is_not_quoted(self, character: str) -> None:
        """A control character in the file is reported by line and column, never shown."""
        error = failure(f'region = "G{character}B"\n[sources.mis]\nkind = "mis"\n')
        assert error.line == 1
        assert character not in str(error)
        assert repr(character)[1:-1] not in str(error)
        assert "column" in error.reason


# --------------------------------------------------------------------------
# Properties: any value anywhere either parses or is a SourceDataError that
# does not repeat it.

SLOTS = {
    "timezone": lambda v: with_source("", head=f"timezone = {v}"),
    "region": lambda v: with_source("", head=f"region = {v}"),
    "precedence": lambda v: with_source("", head=f"precedence = [{v}]"),
    "kind": lambda v: f"[sources.mis]\nkind = {v}\n",
    "covers": lambda v: with_source(f"covers = [{v}]"),
    "schedule": lambda v: with_source(f"schedule = {v}"),
    "adapter": lambda v: with_source(f"adapter = {v}"),
    "mapping": lambda v: with_source(f"mapping = {v}"),
    "guard.max_count": lambda v: with_source("", head=f"[guard]\nmax_count = {v}"),
    "guard.max_fraction": lambda v: with_source("", head=f"[guard]\nmax_fraction = {v}"),
    "guard.enabled": lambda v: with_source("", head=f"[guard]\nenabled = {v}"),
    "transport": lambda v: with_source("", head=f"[transports.sms]\nadapter = {v}"),
    "transport-env": lambda v: with_source(
        "", head=f'[transports.sms]\nadapter = "sms-http"\ntoken_env = {v}'
    ),
    "bare": lambda v: f"region = {v}\n" + MINIMAL,
}


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


@settings(max_examples=budget.examples(300), deadline=None)
@given(
    slot=st.sampled_from(sorted(SLOTS)),
    number=sts.phone_numbers(),
    quoted=st.booleans(),
)
def test_a_phone_number_anywhere_is_never_repeated(slot: str, number: str, quoted: bool) -> None:
    """A phone number typed into any slot is never repeated by the error it causes.

    Only the slots that take any text accept it (and max_count a bare number, a
    TOML integer); any other slot refuses it without its digits.
    """
    value = toml_string(number) if quoted else number
    outcome = attempt(SLOTS[slot](value))
    if isinstance(outcome, SourceDataError):
        assert outcome.file == FILE
        assert number not in str(outcome)
        digits = re.sub(r"\D", "", number)
        assert digits not in re.sub(r"\D", "", outcome.reason)
    else:
        # Only the slots that take any string may accept it, and a count may take
        # a number written bare ("+447700900000" is a TOML integer).
        free = {"adapter", "mapping", "transport", "transport-env"}
        assert slot in free or (slot == "guard.max_count" and not quoted)


text_values = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]), max_size=30
) | st.sampled_from(["FREQ=DAILY", "Europe/London", "GB", "mis", "phones", "true", "0.5"])


@settings(max_examples=budget.examples(400), deadline=None)
@given(slot=st.sampled_from(sorted(SLOTS)), value=text_values, quoted=st.booleans())
def test_any_value_anywhere_parses_or_is_a_source_data_error(
    slot: str, value: str, quoted: bool
) -> None:
    """Any value in any slot parses, or is a SourceDataError on a key or on the TOML itself."""
    outcome = attempt(SLOTS[slot](toml_string(value) if quoted else value))
    if isinstance(outcome, SourceDataError):
        assert outcome.file == FILE
        assert outcome.field is not None or outcome.reason.startswith("not valid TOML")
    else:
        assert "mis" in outcome.sources


@settings(max_examples=budget.examples(100), deadline=None)
@given(
    names=st.lists(
        st.from_regex(r"[a-z][a-z0-9_-]{0,11}", fullmatch=True).filter(
            lambda n: n != "address-book"
        ),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    data=st.data(),
)
def test_any_precedence_of_the_files_own_sources_parses(
    names: list[str], data: st.DataObject
) -> None:
    """Any precedence of the file's sources parses: it leads the order; the address book ends it."""
    precedence = data.draw(st.permutations(names))
    precedence = precedence[: data.draw(st.integers(0, len(precedence)))]
    tables = "".join(f'[sources.{n}]\nkind = "import"\n' for n in names)
    text = f"precedence = {json.dumps(precedence)}\n{tables}"
    policy = parse(text).policy
    assert policy.order[: len(precedence)] == tuple(precedence)
    assert set(policy.order) == {*names, "address-book"}
    assert policy.order[-1] == "address-book"


# --------------------------------------------------------------------------
# Transport options and the environment


class TestResolved:
    SMS = TransportSettings(
        Channel.SMS,
        "sms-http",
        {"url": "https://sms.example.org/send", "sender": "School", "token_env": "SMS_TOKEN"},
    )

    def test_env_keys_are_read_from_the_environ_given(self) -> None:
        """resolved() swaps each NAME_env key for that variable's value in the environ given."""
        options = self.SMS.resolved({"SMS_TOKEN": "tok-abc123", "OTHER": "x"}, file=FILE)
        assert options == {
            "url": "https://sms.example.org/send",
            "sender": "School",
            "token": "tok-abc123",
        }

    def test_the_settings_are_not_changed_by_resolving(self) -> None:
        """resolved() leaves the settings alone: the _env key stays and no secret is added."""
        self.SMS.resolved({"SMS_TOKEN": "tok-abc123"}, file=FILE)
        assert "token" not in self.SMS.options
        assert self.SMS.options["token_env"] == "SMS_TOKEN"

    def test_a_missing_variable_names_the_key_never_a_value(self) -> None:
        """An unset variable is an error naming the _env key, never a value of the environ."""
        secrets = {"SMS_PASSWORD": "pw-secret-1", "SMTP_TOKEN": "tok-secret-2"}
        with pytest.raises(SourceDataError) as caught:
            self.SMS.resolved(secrets, file=FILE)
        error = caught.value
        assert error.file == FILE
        assert error.field == "transports.sms.token_env"
        assert "transports.sms.token_env" in str(error)
        for secret in secrets.values():
            assert secret not in str(error)

    def test_an_empty_variable_is_passed_on_for_the_transport_to_judge(self) -> None:
        """A variable set to empty text is passed on as is, for the transport to judge."""
        assert self.SMS.resolved({"SMS_TOKEN": ""}, file=FILE)["token"] == ""

    def test_parsed_transports_resolve(self) -> None:
        """A parsed transport resolves its password_env, or names that key when it is unset."""
        text = with_source("", head=_docs_email_transport())
        email = parse(text).transports[Channel.EMAIL]
        options = email.resolved({"SMTP_PASSWORD": "pw-1"}, file=FILE)
        assert options["password"] == "pw-1"
        assert "password_env" not in options
        with pytest.raises(SourceDataError) as caught:
            email.resolved({}, file=FILE)
        assert caught.value.field == "transports.email.password_env"

    @settings(max_examples=budget.examples(100))
    @given(
        plain=st.dictionaries(
            st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.integers() | st.text(max_size=5)
        ),
        secret=st.dictionaries(
            st.from_regex(r"[a-z]{1,8}", fullmatch=True),
            st.tuples(st.from_regex(r"[A-Z_]{1,8}", fullmatch=True), st.text(max_size=10)),
        ),
    )
    def test_resolving_swaps_every_env_key_and_keeps_the_rest(
        self, plain: dict[str, object], secret: dict[str, tuple[str, str]]
    ) -> None:
        """resolved() replaces every _env key by its variable's value and keeps other options."""
        plain = {k: v for k, v in plain.items() if k not in secret}
        options = {**plain, **{f"{k}_env": var for k, (var, _) in secret.items()}}
        environ = dict(secret.values())
        resolved = TransportSettings(Channel.EMAIL, "smtp", options).resolved(environ, file=FILE)
        assert resolved == {**plain, **{k: environ[var] for k, (var, _) in secret.items()}}


def _docs_email_transport() -> str:
    return (
        '[transports.email]\nadapter = "smtp"\nhost = "smtp.example.org"\n'
        'sender = "office@school.example.org"\npassword_env = "SMTP_PASSWORD"\n'
    )


# --------------------------------------------------------------------------
# Secrets written into the file


class TestPlaintextSecrets:
    TEXT = with_source(
        "",
        head=(
            '[transports.email]\nadapter = "smtp"\nhost = "smtp.example.org"\n'
            'sender = "office@school.example.org"\nusername = "office"\npassword = "pw-9f3a"\n'
            '[transports.sms]\nadapter = "sms-http"\nurl = "https://sms.example.org/send"\n'
            'sender = "School"\ntoken = "tok-77c1"\n'
        ),
    )

    def test_they_are_named_in_a_warning_that_holds_no_value(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Secrets written into the file are listed and warned of by key, never by value.

        The warning points to password_env, the way to keep them out of the
        file.
        """
        with caplog.at_level("WARNING", logger="sourcetruth"):
            parsed = parse(self.TEXT)
        assert parsed.plaintext_secrets == ("transports.email.password", "transports.sms.token")
        said = " ".join(r.getMessage() for r in caplog.records)
        assert "transports.email.password" in said
        assert "transports.sms.token" in said
        assert "password_env" in said
        assert "pw-9f3a" not in said
        assert "tok-77c1" not in said

    def test_secrets_in_the_environment_are_not_warned_about(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A transport that takes its secret through an _env key is neither listed nor warned of."""
        text = with_source("", head=_docs_email_transport())
        with caplog.at_level("WARNING", logger="sourcetruth"):
            assert parse(text).plaintext_secrets == ()
        assert caplog.records == []


class TestAllowInsecure:
    """F4: accepting credentials in clear is a flag written in the file, true or false."""

    @staticmethod
    def sms(extra: str) -> str:
        return with_source(
            "",
            head=(
                '[transports.sms]\nadapter = "sms-http"\nurl = "http://sms.example.org/send"\n'
                f'sender = "School"\ntoken_env = "SMS_TOKEN"\n{extra}\n'
            ),
        )

    @pytest.mark.parametrize("value", ["true", "false"])
    def test_a_boolean_is_taken_and_passed_to_the_transport(self, value: str) -> None:
        """F4: allow_insecure = true or false is an option of the SMS transport, passed as it is."""
        parsed = parse(self.sms(f"allow_insecure = {value}"))
        check_adapters(parsed, file=FILE)
        options = parsed.transports[Channel.SMS].resolved({"SMS_TOKEN": "t"}, file=FILE)
        assert options["allow_insecure"] is (value == "true")

    @pytest.mark.parametrize("key", ["allow_insecure", "allow_plain_auth"])
    @pytest.mark.parametrize("value", ['"true"', '"false"', "1", "0"])
    def test_anything_but_a_boolean_is_refused_at_its_key(self, key: str, value: str) -> None:
        """F4: "false" (text, so true to Python) or 1 is refused, naming the key, not the value."""
        error = failure(self.sms(f"{key} = {value}"))
        assert error.field == f"transports.sms.{key}"
        assert value not in error.reason

    @pytest.mark.parametrize("key", ["allow_insecure", "allow_plain_auth"])
    def test_the_flag_never_comes_from_the_environment(self, key: str) -> None:
        """F4: a variable's text would make any value true: the flag is written in the file."""
        error = failure(self.sms(f'{key}_env = "INSECURE"'))
        assert error.field == f"transports.sms.{key}_env"


# --------------------------------------------------------------------------
# The adapters a file names, and their options


def adapters_failure(text: str) -> SourceDataError:
    with pytest.raises(SourceDataError) as caught:
        check_adapters(parse(text), file=FILE)
    assert caught.value.file == FILE
    assert "TypeError" not in str(caught.value)
    return caught.value


SMTP = (
    '[transports.email]\nadapter = "smtp"\nhost = "smtp.example.org"\n'
    'sender = "office@school.example.org"\n'
)


class TestCheckAdapters:
    def test_the_starter_and_the_documented_example_pass(self) -> None:
        """The starter file and the documented example name only adapters and options there are."""
        check_adapters(parse(STARTER), file=FILE)
        check_adapters(parse(documented_example()), file=FILE)

    def test_a_source_without_an_adapter_passes(self) -> None:
        """A source that names no adapter passes the adapter check."""
        check_adapters(parse(MINIMAL), file=FILE)

    @pytest.mark.parametrize(
        ("extra", "where", "said"),
        [
            ('adapter = "onerostr"', "sources.mis.adapter", "did you mean oneroster?"),
            ('adapter = "x"', "sources.mis.adapter", "csv, oneroster, oneroster-rest, sds"),
            (
                'adapter = "oneroster"\noptions = { orgg = "x" }',
                "sources.mis.options.orgg",
                "did you mean org?",
            ),
            (
                'adapter = "oneroster"\noptions = { source = "x" }',
                "sources.mis.options.source",
                "book folder",
            ),
            (
                'adapter = "oneroster"\noptions = { org_env = "ORG" }',
                "sources.mis.options.org_env",
                "not an option",
            ),
            ('adapter = "csv"\noptions = { mapping = "m" }', "sources.mis.options.mapping", "book"),
        ],
    )
    def test_a_source_mistake_names_the_key(self, extra: str, where: str, said: str) -> None:
        """A source's unknown adapter or option, or one it may not take, is named by its key."""
        error = adapters_failure(with_source(extra))
        assert error.field == where
        assert said in error.reason

    def test_the_options_of_each_adapter_pass(self) -> None:
        """Every OneRoster option passes, as do the SDS adapter and CSV with a mapping."""
        text = with_source(
            'adapter = "oneroster"\noptions = { org = "o", allow_cp1252 = true, '
            "max_reject_fraction = 0.1, guardian_agents_complete = false }"
        )
        check_adapters(parse(text), file=FILE)
        check_adapters(parse(with_source('adapter = "sds"')), file=FILE)
        check_adapters(parse(with_source('adapter = "csv"\nmapping = "m.toml"')), file=FILE)

    @pytest.mark.parametrize(
        ("head", "where", "said"),
        [
            ('[transports.sms]\nadapter = "pigeon"', "transports.sms.adapter", "sms-http"),
            (SMTP + 'hots = "x"', "transports.email.hots", "did you mean host?"),
            (SMTP + 'hots_env = "X"', "transports.email.hots_env", "did you mean host?"),
            (
                '[transports.email]\nadapter = "smtp"\nhost = "smtp.example.org"',
                "transports.email.sender",
                "required",
            ),
            (
                '[transports.sms]\nadapter = "outbox"\nchannel = "sms"',
                "transports.sms.channel",
                "not an option",
            ),
        ],
    )
    def test_a_transport_mistake_names_the_key(self, head: str, where: str, said: str) -> None:
        """A transport's bad adapter, or misspelt, missing or reserved option, names its key."""
        error = adapters_failure(with_source("", head=head))
        assert error.field == where
        assert said in error.reason

    def test_env_keys_stand_for_their_options(self) -> None:
        """An _env key stands for its option: SMTP's host may come from host_env."""
        text = with_source(
            "",
            head=(
                '[transports.email]\nadapter = "smtp"\nhost_env = "SMTP_HOST"\n'
                'sender = "office@school.example.org"\nusername = "office"\n'
                'password_env = "SMTP_PASSWORD"\n'
                '[transports.sms]\nadapter = "outbox"\nfolder = "held/sms"\n'
            ),
        )
        check_adapters(parse(text), file=FILE)

    def test_an_adapter_that_takes_anything_takes_any_option(self) -> None:
        """An adapter whose factory takes **options accepts an option of any name."""
        from sourcetruth.adapters import registry

        def anything(path: object, **options: object) -> None:
            raise AssertionError("not called")

        registry.register("source", "anything-goes", anything)
        try:
            text = with_source('adapter = "anything-goes"\noptions = { colour = "red" }')
            check_adapters(parse(text), file=FILE)
        finally:
            registry.unregister("source", "anything-goes")


# --------------------------------------------------------------------------
# CSV mapping files


GOOD_MAPPING = """\
key = "Id"
given_name = "First name"
role = "Type"
default_role = "guardian"
role_values = { parent = "guardian" }
phones = [{ column = "Mobile", type = "mobile" }]
emails = [{ column = "Email" }]

[format]
delimiter = ";"
allow_cp1252 = true
max_reject_fraction = 0.02
"""


def mapping_failure(tmp_path: Path, text: str) -> SourceDataError:
    file = tmp_path / "mapping.toml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(SourceDataError) as caught:
        read_mapping(file)
    error = caught.value
    assert error.file == str(file)
    for jargon in ("@ $", "extra fields", "cattrs", "Traceback", "invalid value for type"):
        assert jargon not in str(error)
    return error


class TestReadMapping:
    def test_a_good_mapping_reads(self, tmp_path: Path) -> None:
        """A well-formed mapping file reads into its key, its format and the fields it covers."""
        (tmp_path / "mapping.toml").write_text(GOOD_MAPPING, encoding="utf-8")
        mapping = read_mapping(tmp_path / "mapping.toml")
        assert mapping.key == "Id"
        assert mapping.format.delimiter == ";"
        assert mapping.covers == {"given_name", "role", "phones", "emails"}

    @pytest.mark.parametrize(
        ("text", "where", "said"),
        [
            ('key = "Id"\ngiven_nam = "First"\n', "given_nam", "did you mean given_name?"),
            ('given_name = "First"\n', "key", "required"),
            ("key = 1\n", "key", "string"),
            ('key = "Id"\nphones = "Mobile"\n', "phones", "list of tables"),
            ('key = "Id"\nphones = [{ colum = "M" }]\n', "phones[1].colum", "did you mean column?"),
            ('key = "Id"\nphones = [{ type = "mobile" }]\n', "phones[1].column", "required"),
            (
                'key = "Id"\nemails = [{ column = "E" }, { column = "F", type = "mobile" }]\n',
                "emails[2].type",
                "home, work, other",
            ),
            ('key = "Id"\ndefault_role = "parent"\n', "default_role", "guardian"),
            ('key = "Id"\nrole_values = { mum = "mother" }\n', "role_values.mum", "guardian"),
            ('key = "Id"\n[format]\ndelimitr = ";"\n', "format.delimitr", "did you mean"),
            ('key = "Id"\n[format]\nhas_header = "yes"\n', "format.has_header", "true or false"),
            ('key = "Id"\n[format]\nmax_field = 0\n', "format.max_field", "1 or more"),
            (
                'key = "Id"\n[format]\nmax_reject_fraction = 5\n',
                "format.max_reject_fraction",
                "from 0 to 1",
            ),
        ],
    )
    def test_a_mistake_names_the_file_and_the_key_in_words(
        self, tmp_path: Path, text: str, where: str, said: str
    ) -> None:
        """Each mistake in a mapping names the file and key and says what is wrong in words."""
        error = mapping_failure(tmp_path, text)
        assert error.field == where
        assert said in error.reason

    def test_the_mappings_own_checks_are_data_errors_too(self, tmp_path: Path) -> None:
        """A delimiter the CSV format refuses is a SourceDataError on format, naming delimiter."""
        error = mapping_failure(tmp_path, 'key = "Id"\n[format]\ndelimiter = ":"\n')
        assert "delimiter" in error.reason
        assert error.field == "format"

    def test_a_syntax_error_names_the_line(self, tmp_path: Path) -> None:
        """A TOML syntax error in a mapping names the line it is on."""
        error = mapping_failure(tmp_path, 'key = "Id"\ngiven_name = "First\n')
        assert error.line == 2

    def test_a_missing_file_names_the_key_that_names_it(self, tmp_path: Path) -> None:
        """A missing mapping file is an error on its path naming the settings key pointing there."""
        with pytest.raises(SourceDataError) as caught:
            read_mapping(tmp_path / "nowhere.toml", named_by="sources.import.mapping")
        assert caught.value.file == str(tmp_path / "nowhere.toml")
        assert "sources.import.mapping" in caught.value.reason
        assert "no such file" in caught.value.reason

    def test_a_file_that_is_not_text_says_so(self, tmp_path: Path) -> None:
        """A mapping file that is not UTF-8 is a SourceDataError that says so."""
        (tmp_path / "mapping.toml").write_bytes(b'key = "\xff"\n')
        with pytest.raises(SourceDataError, match="UTF-8"):
            read_mapping(tmp_path / "mapping.toml")
