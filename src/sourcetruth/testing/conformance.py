"""A conformance kit: does an adapter keep the rules the book relies on?

Subclass a contract in your own test module and override one fixture that
builds your adapter; pytest then runs every check of the kit against it::

    from sourcetruth.testing.conformance import SourceAdapterContract

    class TestArborAdapter(SourceAdapterContract):
        @pytest.fixture
        def make_adapter(self):
            def make(snapshot, directory):
                write_arbor_export(snapshot, directory)   # your format's writer
                return ArborAdapter(directory, source=snapshot.source)
            return make

``make_adapter`` returns a function that writes a snapshot in the adapter's
format into an empty directory and returns an adapter reading it, at its
default reject limit of 0; ``make_lenient_adapter`` does the same at a
reject limit of at least 50%. The writer must write every record it is
given, in the snapshot's order: the kit writes the same data in other orders
and with a duplicated key, and fails saying so when the bytes do not change.
The kit writes its own sample school through it, under the source name
``kit-mis``, reads it at 01:55 at UTC+11, and checks that:

- the adapter keeps the :class:`~sourcetruth.adapters.SourceAdapter` protocol,
  under the source name and at the instant it was given;
- reading twice gives equal snapshots; records come in key order, and the
  records, and a guardian's links, written in another order read the same
  to the byte (:func:`sourcetruth.dumps`);
- keys are stable: the same people have the same keys after their data changed;
- every covered field round-trips exactly;
- bad input raises the library's typed errors, without the personal values:
  a value spoilt with bytes that are not UTF-8, one file at a time, is an
  error naming that file;
- one record it cannot read refuses the input at reject limit 0, and under
  a limit is left out of a delta that reports it; a duplicated key, a record
  with no name, a link to nobody and a priority that is not a number are
  each refused, read, or reported, never passed through or dropped silently;
- where the format has deltas, a delta applied on top of a full snapshot gives
  the same book as the next full snapshot;
- what it reads merges into a book.

Capabilities are fixtures too: override ``supports_delta`` (False unless the
adapter says so), ``covered_fields`` (the adapter's ``covers``), ``sample``
and ``next_sample`` (a school your format can carry, when it cannot carry
the kit's), ``spoilt_files``, ``broken_adapters`` and
``partly_broken_sample`` (how the input is spoilt), and ``not_applicable``
(a check that cannot apply to your format, with the reason: it is skipped,
saying it). ``docs/adapters.md`` lists every fixture and how it spoils the
input. The contracts are not collected by themselves: their names do not
start with ``Test``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import attrs
import pytest

from sourcetruth.adapters.sources.base import AddressBookAdapter, Reading, SourceAdapter
from sourcetruth.audience import recipients
from sourcetruth.effective import contacts_at
from sourcetruth.exceptions import SourceDataError, SourceTruthError, format_errors
from sourcetruth.merge import merge
from sourcetruth.model import (
    FIELDS,
    Book,
    Channel,
    ContactData,
    Email,
    EmailType,
    Phone,
    PhoneType,
    Record,
    Relationship,
    Role,
    Rule,
    Snapshot,
    SnapshotKind,
    SourceKind,
    record_id,
)
from sourcetruth.policy import DepartureGuard, Policy, Source
from sourcetruth.serialise import dumps
from sourcetruth.testing._spoil import (
    NOT_A_NUMBER,
    ODD_NUMBER,
    UNKNOWN_PUPIL,
    duplicated,
    files_under,
    nameless,
    permuted,
    spoil_a_value,
    spoil_markup,
    unkeyed,
    with_a_link_to_nobody,
    with_an_odd_number,
)

__all__ = [
    "AddressBookAdapterContract",
    "SourceAdapterContract",
    "personal_values",
    "sample_school",
]

MakeAdapter = Callable[[Snapshot, Path], SourceAdapter]
MakeAddressBook = Callable[[Path], AddressBookAdapter]

# A time with an offset that is not UTC's, so that an adapter that forgets
# the offset (01:55 in Melbourne read as 01:55 UTC) is caught; fixed, so the
# kit needs no time zone database.
_MELBOURNE = timezone(timedelta(hours=11), "AEDT")
_READ_AT = datetime(2026, 11, 24, 1, 55, tzinfo=_MELBOURNE)
_NEXT_READ_AT = datetime(2026, 11, 25, 1, 55, tzinfo=_MELBOURNE)


def _pupil(key: str, given: str, family: str, year: str, form: str, email: str) -> Record:
    data = ContactData(
        given,
        family,
        Role.PUPIL,
        emails=(Email(email, EmailType.HOME),),
        year_group=year,
        registration_group=form,
    )
    return Record(key, data)


def _guardian(
    key: str, given: str, family: str, mobile: str, home: str, email: str, *pupils: str
) -> Record:
    phones = [Phone(mobile, PhoneType.MOBILE)]
    if home:
        phones.append(Phone(home, PhoneType.HOME))
    data = ContactData(
        given,
        family,
        Role.GUARDIAN,
        phones=phones,
        emails=(Email(email, EmailType.HOME),),
        relationships=tuple(Relationship(p) for p in pupils),
    )
    return Record(key, data)


def sample_school(source: str = "mis", *, at: datetime = _READ_AT) -> Snapshot:
    """The kit's sample: a small school that every field of the model appears in.

    Each person has at most one mobile and one home phone and one email, so
    that the formats with a column for each (OneRoster, School Data Sync) can
    carry it. The values test what files get wrong: accents, apostrophes,
    commas, quotes, the words ``Null`` and ``NA`` as names, a leading ``0``
    and a leading ``+``. Every value is fictional (Ofcom drama numbers,
    ``.test`` and ``example.org`` addresses).
    """

    records = (
        _pupil("P1001", "Amélie", "O'Neill", "9", "9B", "amelie.oneill@pupils.example.org"),
        _pupil("P1002", "Ben", "Shah", "10", "10R", "ben.shah@pupils.example.org"),
        _pupil("P1003", "Null", "NA", "7", "7C", "null.na@pupils.example.org"),
        _guardian(
            "G2001", "Gita", "Shah", "07700 900101", "01632 960101", "gita@parent.test", "P1002"
        ),
        _guardian(
            "G2002",
            'Zoë "Zo"',
            "Smith-Jones, Jr",
            "+44 7700 900102",
            "",
            "zoe.smith-jones@example.org",
            "P1001",
            "P1003",
        ),
        Record(
            "S3001",
            ContactData(
                "Chris",
                "Taylor",
                Role.STAFF,
                emails=(Email("c.taylor@school.test", EmailType.WORK),),
            ),
        ),
    )
    return Snapshot(source, at, records)


def _next_night(sample: Snapshot, at: datetime) -> Snapshot:
    """The sample a night later: one person's data changed, one left, one joined."""
    records = sorted(sample.records, key=lambda r: r.key)
    changed = records[0]
    data = changed.data
    if data.given_name:
        data = attrs.evolve(data, given_name=data.given_name + " Jr")
    joiner = attrs.evolve(records[-1], key=records[-1].key + "N")
    kept = [attrs.evolve(changed, data=data), *records[1:-1], records[-1], joiner]
    leaver = records[1] if len(records) > 2 else None
    return Snapshot(sample.source, at, [r for r in kept if leaver is None or r.key != leaver.key])


def personal_values(snapshot: Snapshot) -> set[str]:
    """Every name, number and address of *snapshot*: text no error may contain."""
    found: set[str] = set()
    for record in snapshot.records:
        data = record.data
        found.update(v for v in (data.given_name, data.family_name) if len(v) > 3)
        found.update(p.number for p in data.phones)
        found.update(e.address for e in data.emails)
    return found


def _field(data: ContactData, name: str) -> Any:
    value = getattr(data, name)
    if isinstance(value, tuple):
        # Order is compared too loosely on purpose: a format may list a
        # person's numbers in its own column order.
        return sorted(value, key=lambda v: str(attrs.astuple(v)))
    return value


def _error_text(error: BaseException) -> str:
    """Everything an error would show: its lines, notes, and the errors it chains to."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(format_errors(current))
        parts.extend(getattr(current, "__notes__", ()))
        if isinstance(current, BaseExceptionGroup):
            parts.extend(_error_text(e) for e in current.exceptions)
        chained = current.__cause__
        if chained is None and not current.__suppress_context__:
            chained = current.__context__
        current = chained
    return "\n".join(parts)


def _leaks(text: str, values: set[str]) -> list[str]:
    return sorted(v for v in values if v in text)


def _check_data_error(error: BaseException, values: set[str], *, file: str | None = None) -> None:
    """*error* is the library's data error, names none of *values*, and names *file* if given."""
    problems = error.exceptions if isinstance(error, BaseExceptionGroup) else (error,)
    assert all(isinstance(p, SourceDataError) for p in problems), problems
    text = _error_text(error)
    leaked = _leaks(text, values)
    assert not leaked, "an error, its notes, or an error it chains to names a personal value"
    if file is not None:
        assert _names_file(text, file), f"the error does not name the file {file}"


def _read(adapter: SourceAdapter) -> Reading:
    """*adapter*'s reading at the kit's time; an error that is not the library's fails the check."""
    try:
        return adapter.read(extracted_at=_READ_AT)
    except SourceTruthError:
        raise
    except Exception as error:  # any other error is the adapter's fault
        pytest.fail(
            f"bad input raised {type(error).__name__}, not one of the library's typed errors: "
            "raise SourceDataError (or RejectedFileError) naming file, line and field"
        )


def _read_or_refuse(adapter: SourceAdapter, values: set[str]) -> Reading | None:
    """*adapter*'s reading, or None when it refused with a data error that names no value."""
    try:
        reading = _read(adapter)
    except SourceTruthError as error:
        _check_data_error(error, values)
        return None
    _check_notices(reading, values)
    return reading


def _check_notices(reading: Reading, values: set[str]) -> None:
    said = "\n".join(str(n) for n in reading.notices)
    assert not _leaks(said, values), "a notice names a personal value"


def _check_partial(reading: Reading, others: set[str], bad_key: str, values: set[str]) -> None:
    """*reading* is a delta of *others* that rejected *bad_key*'s record, and said so."""
    snapshot = reading.snapshot
    assert snapshot.kind is SnapshotKind.DELTA, (
        "a full snapshot without a record the adapter rejected: that person departs; "
        "a partial read is a delta"
    )
    assert reading.rejected >= 1, "a record was left out, yet the reading rejected nothing"
    keys = {r.key for r in snapshot.records}
    assert bad_key not in keys, "the unreadable record was read"
    assert "" not in keys, "a record without a key was read"
    assert keys == others, "the records the adapter could read are not all there"
    assert bad_key not in snapshot.removed, "a rejected record was read as a leaver"
    located = [n for n in reading.notices if n.file]
    assert len(located) >= reading.rejected, (
        f"{reading.rejected} records rejected, but only {len(located)} notices name a file: "
        "report each rejected record's problems as notices"
    )
    _check_notices(reading, values)


def _reported(reading: Reading, plain: Reading) -> bool:
    """Whether *reading* said more than *plain*, the sample's own reading: a rejection or notice."""
    return reading.rejected > plain.rejected or len(reading.notices) > len(plain.notices)


def _names_file(text: str, name: str) -> bool:
    return name in text or PurePosixPath(name).name in text


def _same_files(first: Path, second: Path) -> bool:
    """Whether the two directories hold the same files with the same bytes."""
    ours = [p.relative_to(first) for p in files_under(first)]
    theirs = [p.relative_to(second) for p in files_under(second)]
    return ours == theirs and all(
        (first / n).read_bytes() == (second / n).read_bytes() for n in ours
    )


def _write_or_skip(
    make: MakeAdapter, snapshot: Snapshot, directory: Path, what: str
) -> SourceAdapter:
    """The adapter over *snapshot*; the check skipped, saying why, when the writer refuses it."""
    try:
        return make(snapshot, directory)
    except Exception as error:  # whatever the writer raises, it could not
        pytest.skip(f"the writer cannot write {what} ({type(error).__name__}: {error})")


def _same_reading_in_another_order(
    make: MakeAdapter,
    sample: Snapshot,
    reordered: Snapshot,
    workdir: Callable[[], Path],
    what: str,
) -> None:
    """*sample* and *reordered* written out differ, and read to the same bytes."""
    first_dir, second_dir = workdir(), workdir()
    first = make(sample, first_dir).read(extracted_at=_READ_AT)
    second_adapter = make(reordered, second_dir)
    if _same_files(first_dir, second_dir):
        pytest.fail(
            f"the writer wrote the same bytes for the {what} in another order: it sorts "
            "them, so the kit cannot check that reading ignores their order. Write them in "
            "the snapshot's order, or name this check in not_applicable with the reason"
        )
    second = second_adapter.read(extracted_at=_READ_AT)
    assert dumps(first.snapshot) == dumps(second.snapshot), (
        f"the same data, with the {what} written in another order, reads differently: "
        "an export reordered overnight would be a change"
    )


class SourceAdapterContract:
    """The checks every source adapter must pass; subclass it and override ``make_adapter``."""

    @pytest.fixture
    def make_adapter(self) -> MakeAdapter:
        """Return ``make(snapshot, directory) -> adapter``: write, then read back.

        The adapter is built at its default reject limit, which is 0: one
        record it cannot read refuses the whole input.
        """
        msg = "override the make_adapter fixture to build your adapter"
        raise NotImplementedError(msg)

    @pytest.fixture
    def make_lenient_adapter(self) -> MakeAdapter | None:
        """``make_adapter``, but with a reject limit of at least 50%; None until overridden.

        The kit writes six records and makes one unreadable, so 20% would do;
        50% leaves a format that spreads a record over several rows room.
        """
        return None

    @pytest.fixture
    def not_applicable(self) -> Mapping[str, str]:
        """Checks that cannot apply to your format, each with the reason (shown as its skip)."""
        return {}

    @pytest.fixture(autouse=True)
    def _skip_what_does_not_apply(
        self, request: pytest.FixtureRequest, not_applicable: Mapping[str, str]
    ) -> None:
        checks = {name for name in dir(type(self)) if name.startswith("test_")}
        unknown = sorted(set(not_applicable) - checks)
        if unknown:
            pytest.fail(f"not_applicable names what is no check of the kit: {unknown}")
        reason = not_applicable.get(request.node.originalname)
        if reason is not None:
            pytest.skip(f"not applicable, says the adapter's test: {reason}")

    @pytest.fixture
    def source_name(self) -> str:
        """The source name the sample is written under: not "mis", so a hard-coded one shows."""
        return "kit-mis"

    @pytest.fixture
    def sample(self, source_name: str) -> Snapshot:
        """A full snapshot the format can carry (the kit's :func:`sample_school`)."""
        return sample_school(source_name)

    @pytest.fixture
    def next_sample(self, sample: Snapshot) -> Snapshot:
        """The next night's full snapshot: one change, one leaver, one joiner."""
        return _next_night(sample, _NEXT_READ_AT)

    @pytest.fixture
    def workdir(self, tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
        """A fresh empty directory on every call."""
        return lambda: tmp_path_factory.mktemp("adapter")

    @pytest.fixture
    def adapter(
        self, make_adapter: MakeAdapter, sample: Snapshot, workdir: Callable[[], Path]
    ) -> SourceAdapter:
        """The adapter over the sample."""
        return make_adapter(sample, workdir())

    @pytest.fixture
    def supports_delta(self, adapter: SourceAdapter) -> bool:
        """Whether the format has deltas; the adapter's own claim by default."""
        return adapter.supports_delta

    @pytest.fixture
    def covered_fields(self, adapter: SourceAdapter) -> frozenset[str]:
        """The fields that must round-trip; the adapter's ``covers`` by default."""
        return adapter.covers

    @pytest.fixture
    def broken_adapters(
        self, make_adapter: MakeAdapter, sample: Snapshot, workdir: Callable[[], Path]
    ) -> list[SourceAdapter]:
        """Adapters over bad input; by default the sample's files, each spoilt after line 1."""
        directory = workdir()
        adapter = make_adapter(sample, directory)
        files = files_under(directory)
        if not files:
            pytest.skip("the adapter wrote no files to spoil; override broken_adapters")
        for path in files:
            spoil_markup(path)
        return [adapter]

    @pytest.fixture
    def spoilt_files(
        self, make_adapter: MakeAdapter, sample: Snapshot, workdir: Callable[[], Path]
    ) -> list[tuple[SourceAdapter, str]]:
        """Adapters over the sample with one file spoilt inside a value, and that file's name.

        One pair per file written that holds a personal value: in a fresh
        copy, bytes that are not UTF-8 (but are latin-1) go at the start of
        one of its values. A file holding none (a manifest, a list of
        schools) may be one the adapter never reads, so it is left alone.
        """
        directory = workdir()
        make_adapter(sample, directory)
        values = personal_values(sample)
        spoilt: list[tuple[SourceAdapter, str]] = []
        for path in files_under(directory):
            name = path.relative_to(directory)
            copy = workdir()
            adapter = make_adapter(sample, copy)
            if spoil_a_value(copy / name, values) is not None:
                spoilt.append((adapter, name.as_posix()))
        return spoilt

    @pytest.fixture
    def partly_broken(self) -> tuple[SourceAdapter, str] | None:
        """An adapter over the sample with one person's row made unreadable, and that key.

        None (the default) skips this check; the kit makes its own partly
        broken input (``partly_broken_sample``) either way. Build it with a
        reject limit above zero to check the delta path, or at zero to check
        that the whole input is refused.
        """
        return None

    @pytest.fixture
    def partly_broken_sample(self, sample: Snapshot) -> tuple[Snapshot, str]:
        """The sample with one record no adapter can read, and that record's key.

        By default the record's key is emptied: no format can key a record
        without one.
        """
        return unkeyed(sample)

    # -- the checks ------------------------------------------------------------------

    def test_keeps_the_protocol(self, adapter: SourceAdapter, sample: Snapshot) -> None:
        """The adapter has every member of the protocol, with sensible values."""
        assert isinstance(adapter, SourceAdapter)
        assert adapter.source == sample.source, "the adapter's source is not the name it was given"
        assert adapter.kind in (SourceKind.MIS, SourceKind.IMPORT)
        assert adapter.covers <= frozenset(FIELDS)
        assert adapter.covers, "an adapter that covers no field reads nothing"
        assert isinstance(adapter.supports_delta, bool)

    def test_reads_a_full_snapshot(self, adapter: SourceAdapter, sample: Snapshot) -> None:
        """A full input reads as a full snapshot of its source, at the instant given."""
        reading = adapter.read(extracted_at=_READ_AT)
        assert reading.snapshot.kind is SnapshotKind.FULL
        assert reading.snapshot.source == sample.source, "the snapshot's source is not the given"
        assert reading.snapshot.extracted_at == _READ_AT, (
            "the snapshot's time is not the instant given (01:55 at UTC+11): "
            "keep its offset, never read it as UTC or local time"
        )
        assert reading.rejected == 0

    def test_reading_twice_gives_equal_snapshots(self, adapter: SourceAdapter) -> None:
        """Reading the same input twice gives equal snapshots and notices."""
        first = adapter.read(extracted_at=_READ_AT)
        second = adapter.read(extracted_at=_READ_AT)
        assert first == second
        assert dumps(first.snapshot) == dumps(second.snapshot)

    def test_snapshots_are_deterministic(
        self, make_adapter: MakeAdapter, sample: Snapshot, workdir: Callable[[], Path]
    ) -> None:
        """Records come in key order, and the same data in any row order reads the same."""
        forward = make_adapter(sample, workdir()).read(extracted_at=_READ_AT)
        keys = [r.key for r in forward.snapshot.records]
        assert keys == sorted(keys), "records are not in key order, so not canonical"
        backward_sample = attrs.evolve(sample, records=tuple(reversed(sample.records)))
        backward = make_adapter(backward_sample, workdir()).read(extracted_at=_READ_AT)
        assert dumps(forward.snapshot) == dumps(backward.snapshot)

    def test_the_order_of_written_records_does_not_matter(
        self, make_adapter: MakeAdapter, sample: Snapshot, workdir: Callable[[], Path]
    ) -> None:
        """The records written in another order read the same: exports come in any order."""
        rows, _ = permuted(sample)
        if rows is None:
            pytest.skip("the sample has one record: nothing to reorder")
        _same_reading_in_another_order(make_adapter, sample, rows, workdir, "records")

    def test_the_order_of_links_does_not_matter(
        self,
        make_adapter: MakeAdapter,
        sample: Snapshot,
        covered_fields: frozenset[str],
        workdir: Callable[[], Path],
    ) -> None:
        """A guardian's links written in another order read the same, not as a change."""
        _, links = permuted(sample)
        if links is None or "relationships" not in covered_fields:
            pytest.skip("no guardian of the sample has two links, or links are not covered")
        _same_reading_in_another_order(make_adapter, sample, links, workdir, "links")

    def test_keys_are_stable_across_reads(
        self,
        make_adapter: MakeAdapter,
        sample: Snapshot,
        next_sample: Snapshot,
        workdir: Callable[[], Path],
    ) -> None:
        """Each person keeps their key when their data changes; keys are the sample's."""
        first = make_adapter(sample, workdir()).read(extracted_at=_READ_AT).snapshot
        second = make_adapter(next_sample, workdir()).read(extracted_at=_NEXT_READ_AT).snapshot
        assert {r.key for r in first.records} == {r.key for r in sample.records}
        assert {r.key for r in second.records} == {r.key for r in next_sample.records}

    def test_every_covered_field_round_trips(
        self, adapter: SourceAdapter, sample: Snapshot, covered_fields: frozenset[str]
    ) -> None:
        """Every covered field of every person reads back exactly as it was written."""
        default = ContactData()
        for name in sorted(covered_fields):
            assert any(_field(r.data, name) != _field(default, name) for r in sample.records), (
                f"the sample leaves {name} empty, so its round trip would prove nothing"
            )
        read = {r.key: r.data for r in adapter.read(extracted_at=_READ_AT).snapshot.records}
        for record in sample.records:
            for name in sorted(covered_fields):
                assert _field(read[record.key], name) == _field(record.data, name), (
                    f"{name} of {record.key} did not round-trip"
                )
            # A field the adapter does not cover is not its to fill: the merge
            # would ignore it, and a report built from the reading would lie.
            for name in sorted(set(FIELDS) - adapter.covers):
                assert _field(read[record.key], name) == _field(default, name), (
                    f"{name} of {record.key} is filled but not covered"
                )

    def test_bad_input_gives_typed_errors(
        self, broken_adapters: list[SourceAdapter], sample: Snapshot
    ) -> None:
        """Bad input raises the library's data errors, which name no personal value."""
        for broken in broken_adapters:
            with pytest.raises(SourceTruthError) as caught:
                _read(broken)
            _check_data_error(caught.value, personal_values(sample))

    def test_a_spoilt_value_is_refused_naming_its_file(
        self, spoilt_files: list[tuple[SourceAdapter, str]], sample: Snapshot
    ) -> None:
        """A value that is not UTF-8, in any one file, is a typed error naming that file."""
        assert spoilt_files, (
            "no file written holds a personal value as UTF-8 for the kit to spoil; "
            "override spoilt_files"
        )
        values = personal_values(sample)
        for broken, name in spoilt_files:
            try:
                _read(broken)
            except SourceTruthError as error:
                _check_data_error(error, values, file=name)
                continue
            pytest.fail(
                f"{name}, with bytes that are not UTF-8 inside a value, was read without an "
                "error: was it decoded as latin-1 or cp1252, or with errors replaced?"
            )

    def test_notices_and_repr_name_no_personal_value(
        self, adapter: SourceAdapter, sample: Snapshot
    ) -> None:
        """What an adapter reports about its input, and its repr, say where, never what."""
        reading = adapter.read(extracted_at=_READ_AT)
        said = "\n".join([repr(adapter), *(str(n) for n in reading.notices)])
        assert not _leaks(said, personal_values(sample)), "a notice or repr names a value"

    def test_a_rejected_row_is_never_a_departure(
        self, partly_broken: tuple[SourceAdapter, str] | None, sample: Snapshot
    ) -> None:
        """Input with one bad row is refused, or read as a delta that leaves that person be."""
        if partly_broken is None:
            pytest.skip("the kit's own partly broken input is checked by the next two checks")
        adapter, bad_key = partly_broken
        values = personal_values(sample)
        reading = _read_or_refuse(adapter, values)
        if reading is None:
            return
        others = {r.key for r in sample.records} - {bad_key}
        _check_partial(reading, others, bad_key, values)

    def test_a_partly_broken_input_is_refused_at_reject_limit_zero(
        self,
        make_adapter: MakeAdapter,
        partly_broken_sample: tuple[Snapshot, str],
        workdir: Callable[[], Path],
    ) -> None:
        """At the default reject limit, 0, one record the adapter cannot read refuses it all."""
        snapshot, bad_key = partly_broken_sample
        adapter = _write_or_skip(make_adapter, snapshot, workdir(), "the partly broken sample")
        values = personal_values(snapshot)
        reading = _read_or_refuse(adapter, values)
        assert reading is None, (
            f"a record the adapter cannot read (by default, {bad_key}'s with its key emptied) "
            "did not refuse the input at reject limit 0"
        )

    def test_a_partly_broken_input_is_read_in_part(
        self,
        make_lenient_adapter: MakeAdapter | None,
        partly_broken_sample: tuple[Snapshot, str],
        workdir: Callable[[], Path],
    ) -> None:
        """Under a reject limit, the other records read, as a delta reporting the rejected one."""
        if make_lenient_adapter is None:
            pytest.fail(
                "override make_lenient_adapter: build your adapter as make_adapter does, with a "
                "reject limit of at least 50%; if your format refuses any bad record whole, "
                "name this check in not_applicable with that reason"
            )
        snapshot, bad_key = partly_broken_sample
        adapter = _write_or_skip(
            make_lenient_adapter, snapshot, workdir(), "the partly broken sample"
        )
        values = personal_values(snapshot)
        try:
            reading = _read(adapter)
        except SourceTruthError as error:
            _check_data_error(error, values)
            pytest.fail(
                f"under a reject limit of 50%, one record the adapter cannot read ({bad_key}) "
                "refused the whole input: a partial read keeps the others"
            )
        others = {r.key for r in snapshot.records if r.key and r.key != bad_key}
        _check_partial(reading, others, bad_key, values)

    def test_a_duplicated_record_is_refused_or_reported(
        self, make_adapter: MakeAdapter, sample: Snapshot, workdir: Callable[[], Path]
    ) -> None:
        """Two records under one key are an error or a reported rejection, never passed through."""
        snapshot, key = duplicated(sample)
        plain_dir, twice_dir = workdir(), workdir()
        plain = make_adapter(sample, plain_dir).read(extracted_at=_READ_AT)
        adapter = _write_or_skip(make_adapter, snapshot, twice_dir, "two records of one key")
        if _same_files(plain_dir, twice_dir):
            pytest.fail(
                "the writer wrote two records of one key as one: write every record you are "
                "given, so the kit can check what the reader does with a duplicated key"
            )
        reading = _read_or_refuse(adapter, personal_values(snapshot))
        if reading is None:
            return
        found = [r for r in reading.snapshot.records if r.key == key]
        assert len(found) < 2, f"the key {key} was read twice: a duplicated key passed through"
        assert _reported(reading, plain), (
            f"two records under the key {key} were read as one without a reported problem"
        )
        if not found:
            _check_partial(reading, {r.key for r in sample.records} - {key}, key, set())

    def test_a_record_without_a_name_is_read_or_reported(
        self,
        make_adapter: MakeAdapter,
        sample: Snapshot,
        covered_fields: frozenset[str],
        workdir: Callable[[], Path],
    ) -> None:
        """A record with no name is read with none, refused, or rejected aloud; never dropped."""
        if not {"given_name", "family_name"} & covered_fields:
            pytest.skip("the adapter covers no name")
        snapshot, key = nameless(sample)
        adapter = _write_or_skip(make_adapter, snapshot, workdir(), "a record with no name")
        reading = _read_or_refuse(adapter, personal_values(snapshot))
        if reading is None or key in {r.key for r in reading.snapshot.records}:
            return
        assert reading.rejected, f"{key}, a record with no name, was skipped silently: it departs"
        _check_partial(reading, {r.key for r in sample.records} - {key}, key, set())

    def test_a_link_to_nobody_is_read_or_reported(
        self,
        make_adapter: MakeAdapter,
        sample: Snapshot,
        covered_fields: frozenset[str],
        workdir: Callable[[], Path],
    ) -> None:
        """A link to a pupil the input does not hold is kept, refused, or dropped aloud."""
        spoilt = with_a_link_to_nobody(sample)
        if spoilt is None or "relationships" not in covered_fields:
            pytest.skip("the sample has no guardian with a link, or links are not covered")
        snapshot, guardian = spoilt
        plain = make_adapter(sample, workdir()).read(extracted_at=_READ_AT)
        adapter = _write_or_skip(make_adapter, snapshot, workdir(), "a link to nobody")
        reading = _read_or_refuse(adapter, personal_values(snapshot))
        if reading is None:
            return
        read = {r.key: r for r in reading.snapshot.records}
        links = read[guardian].data.relationships if guardian in read else ()
        if UNKNOWN_PUPIL in {rel.pupil for rel in links}:
            return
        assert _reported(reading, plain), (
            "a link to a pupil the input does not hold was dropped silently"
        )

    def test_a_number_that_is_not_one_is_refused_or_reported(
        self,
        make_adapter: MakeAdapter,
        sample: Snapshot,
        covered_fields: frozenset[str],
        workdir: Callable[[], Path],
    ) -> None:
        """A link's priority spoilt into letters is a typed error naming the file, or a notice."""
        snapshot = with_an_odd_number(sample)
        if snapshot is None or "relationships" not in covered_fields:
            pytest.skip("the sample has no guardian with a link, or links are not covered")
        directory = workdir()
        adapter = _write_or_skip(make_adapter, snapshot, directory, "a link's priority")
        written = str(ODD_NUMBER).encode()
        holding = [p for p in files_under(directory) if written in p.read_bytes()]
        if not holding:
            pytest.skip("the format writes no link priority: no number for the kit to spoil")
        path = holding[0]
        path.write_bytes(path.read_bytes().replace(written, NOT_A_NUMBER, 1))
        name = path.relative_to(directory).as_posix()
        values = personal_values(snapshot)
        try:
            reading = _read(adapter)
        except SourceTruthError as error:
            _check_data_error(error, values, file=name)
            return
        _check_notices(reading, values)
        assert any(n.file and _names_file(n.file, name) for n in reading.notices), (
            f"a priority that is not a number, in {name}, was read without an error or a notice"
        )

    def test_merges_into_a_book(
        self, adapter: SourceAdapter, sample: Snapshot, covered_fields: frozenset[str]
    ) -> None:
        """What the adapter reads merges into an empty book, one contact per record."""
        policy = _policy_for(adapter)
        result = merge(
            Book(),
            adapter.read(extracted_at=_READ_AT).snapshot,
            policy=policy,
            at=_READ_AT,
            by="conformance kit",
        )
        contacts = {c.id: c for c in contacts_at(result.book, policy=policy, at=_READ_AT)}
        assert set(contacts) == {record_id(sample.source, r.key) for r in sample.records}
        if "relationships" not in covered_fields:
            return
        # Relationships name pupils by their key in the same source: a guardian
        # read from the format must be found by "guardians of" its pupils.
        pupils = {r.key for r in sample.records if r.data.role is Role.PUPIL}
        expected = {
            record_id(sample.source, r.key)
            for r in sample.records
            if any(rel.pupil in pupils and rel.receives_messages for rel in r.data.relationships)
        }
        found = recipients(
            result.book, Rule(guardians_of=True), Channel.EMAIL, policy=policy, at=_READ_AT
        )
        reached = {cid for r in found.recipients for cid in r.contact_ids}
        reached |= {u.contact_id for u in found.unreachable}
        assert expected, "the sample has no guardian linked to a pupil"
        assert reached == expected

    def test_delta_on_full_equals_next_full(
        self,
        make_adapter: MakeAdapter,
        supports_delta: bool,
        sample: Snapshot,
        next_sample: Snapshot,
        workdir: Callable[[], Path],
    ) -> None:
        """Where the format has deltas, full + delta gives the book that the next full gives."""
        if not supports_delta:
            pytest.skip("the adapter's format has no deltas")
        delta = _delta(sample, next_sample)
        full_reading = make_adapter(sample, workdir()).read(extracted_at=_READ_AT)
        delta_adapter = make_adapter(delta, workdir())
        delta_reading = delta_adapter.read(extracted_at=_NEXT_READ_AT)
        assert delta_reading.snapshot.kind is SnapshotKind.DELTA
        assert set(delta_reading.snapshot.removed) == set(delta.removed)
        next_reading = make_adapter(next_sample, workdir()).read(extracted_at=_NEXT_READ_AT)
        policy = _policy_for(delta_adapter)
        start = merge(Book(), full_reading.snapshot, policy=policy, at=_READ_AT, by="kit").book
        by_delta = merge(start, delta_reading.snapshot, policy=policy, at=_NEXT_READ_AT, by="kit")
        by_full = merge(start, next_reading.snapshot, policy=policy, at=_NEXT_READ_AT, by="kit")
        assert _effective(by_delta.book, policy) == _effective(by_full.book, policy)


def _policy_for(adapter: SourceAdapter) -> Policy:
    source = Source(adapter.source, adapter.kind, covers=adapter.covers)
    return Policy(sources=(source,), guard=DepartureGuard(enabled=False))


def _effective(book: Book, policy: Policy) -> dict[str, tuple[ContactData, bool]]:
    return {c.id: (c.data, c.departed) for c in contacts_at(book, policy=policy, at=_NEXT_READ_AT)}


def _delta(old: Snapshot, new: Snapshot) -> Snapshot:
    before = {r.key: r for r in old.records}
    after = {r.key: r for r in new.records}
    changed = [r for key, r in sorted(after.items()) if before.get(key) != r]
    removed = sorted(set(before) - set(after))
    return Snapshot(new.source, new.extracted_at, changed, kind=SnapshotKind.DELTA, removed=removed)


class AddressBookAdapterContract:
    """The checks every address-book adapter must pass; override ``make_adapter``."""

    @pytest.fixture
    def make_adapter(self) -> MakeAddressBook:
        """Return ``make(directory) -> adapter`` over a file in that (empty) directory."""
        msg = "override the make_adapter fixture to build your adapter"
        raise NotImplementedError(msg)

    @pytest.fixture
    def entries(self) -> tuple[Record, ...]:
        """The entries written: the kit's sample school, keyed as address-book entries."""
        return tuple(sample_school("address-book").records)

    @pytest.fixture
    def workdir(self, tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
        """A fresh empty directory on every call."""
        return lambda: tmp_path_factory.mktemp("address-book")

    def test_keeps_the_protocol(
        self, make_adapter: MakeAddressBook, workdir: Callable[[], Path]
    ) -> None:
        """The adapter reads and writes entries."""
        assert isinstance(make_adapter(workdir()), AddressBookAdapter)

    def test_every_field_round_trips(
        self,
        make_adapter: MakeAddressBook,
        entries: tuple[Record, ...],
        workdir: Callable[[], Path],
    ) -> None:
        """Entries written and read back are equal, every field and key of them."""
        adapter = make_adapter(workdir())
        adapter.write_entries(entries)
        read = adapter.read_entries()
        assert sorted(read.entries, key=lambda r: r.key) == sorted(entries, key=lambda r: r.key)

    def test_reading_twice_gives_equal_entries(
        self,
        make_adapter: MakeAddressBook,
        entries: tuple[Record, ...],
        workdir: Callable[[], Path],
    ) -> None:
        """Reading the same file twice gives equal entries and notices."""
        adapter = make_adapter(workdir())
        adapter.write_entries(entries)
        assert adapter.read_entries() == adapter.read_entries()

    def test_writing_is_deterministic(
        self,
        make_adapter: MakeAddressBook,
        entries: tuple[Record, ...],
        workdir: Callable[[], Path],
    ) -> None:
        """The same entries, in any order, are written as the same bytes."""
        first, second = workdir(), workdir()
        make_adapter(first).write_entries(entries)
        make_adapter(second).write_entries(tuple(reversed(entries)))
        files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
        assert files, "write_entries wrote nothing into the adapter's directory"
        for name in files:
            assert (first / name).read_bytes() == (second / name).read_bytes()

    def test_bad_input_gives_typed_errors(
        self,
        make_adapter: MakeAddressBook,
        entries: tuple[Record, ...],
        workdir: Callable[[], Path],
    ) -> None:
        """A spoilt file raises the library's data errors, which name no personal value."""
        directory = workdir()
        adapter = make_adapter(directory)
        adapter.write_entries(entries)
        files = files_under(directory)
        assert files, "write_entries wrote nothing into the adapter's directory"
        for path in files:
            spoil_markup(path)
        with pytest.raises(SourceTruthError) as caught:
            adapter.read_entries()
        values = personal_values(Snapshot("address-book", _READ_AT, entries))
        _check_data_error(caught.value, values)
