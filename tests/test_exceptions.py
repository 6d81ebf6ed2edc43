"""Errors carry their identity in their type: callers branch on it, never on message text."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime

import pytest

from school import full, london, mis_policy, school
from sourcetruth import (
    AdapterError,
    Book,
    ConfirmationMismatchError,
    ConfirmSync,
    ConflictError,
    EncodingError,
    GroupDefinition,
    Link,
    MessageIdReusedError,
    NotInBookError,
    OutOfOrderError,
    RejectedFileError,
    RemoveGroup,
    SchemaVersionError,
    SetGroup,
    SourceDataError,
    SourceTruthError,
    UnknownAdapterError,
    UnknownContactError,
    UnknownGroupError,
    UnknownRecordError,
    UsageError,
    contact_at,
    dumps,
    loads,
    merge,
    recipients,
)
from sourcetruth.adapters import registry
from sourcetruth.model import Channel

POLICY = mis_policy()


def synced() -> Book:
    return merge(
        Book(), full(london(23, 2), school()), policy=POLICY, at=london(23, 2), by="n"
    ).book


class TestWhatTheBookDoesNotHold:
    def test_an_unknown_contact_is_its_own_type(self) -> None:
        """Asking for a contact the book does not hold raises UnknownContactError."""
        with pytest.raises(UnknownContactError):
            contact_at(synced(), "mis:NOBODY", policy=POLICY, at=london(23, 9))

    def test_an_unknown_group_is_not_an_unknown_contact(self) -> None:
        """A group name the book does not hold raises UnknownGroupError, in queries and changes."""
        book = synced()
        with pytest.raises(UnknownGroupError) as asked:
            recipients(book, "Governors", Channel.EMAIL, policy=POLICY, at=london(23, 9))
        assert not isinstance(asked.value, UnknownContactError)
        with pytest.raises(UnknownGroupError):
            merge(book, RemoveGroup("Governors"), policy=POLICY, at=london(23, 9), by="o")

    def test_a_group_naming_an_unknown_contact_is_an_unknown_contact(self) -> None:
        """A group's member that the book does not hold is the contact's fault, not the group's."""
        change = SetGroup(GroupDefinition("G", members=("mis:NOBODY",)))
        with pytest.raises(UnknownContactError):
            merge(synced(), change, policy=POLICY, at=london(23, 9), by="o")

    def test_an_unknown_record_is_its_own_type(self) -> None:
        """Linking a record that no source holds raises UnknownRecordError."""
        with pytest.raises(UnknownRecordError):
            merge(
                synced(), Link("mis:G9", "import:nobody"), policy=POLICY, at=london(23, 9), by="o"
            )

    @pytest.mark.parametrize("kind", [UnknownContactError, UnknownGroupError, UnknownRecordError])
    def test_every_unknown_name_is_a_usage_lookup_error(self, kind: type[Exception]) -> None:
        """One ``except NotInBookError`` (or LookupError) catches every name the book lacks."""
        assert issubclass(kind, NotInBookError)
        assert issubclass(kind, UsageError)
        assert issubclass(kind, LookupError)


class TestTimeAndConfirmation:
    def test_a_change_before_the_book_s_latest_says_when_that_was(self) -> None:
        """OutOfOrderError carries the book's latest change time as an attribute."""
        book = synced()
        with pytest.raises(OutOfOrderError) as caught:
            merge(book, full(london(22, 1), school()), policy=POLICY, at=london(22, 2), by="n")
        assert caught.value.latest == book.updated_at

    def test_a_token_for_another_snapshot_is_a_confirmation_mismatch(self) -> None:
        """A held sync confirmed with a token not its own raises ConfirmationMismatchError."""
        truncated = full(london(24, 2), school()[:1])
        change = ConfirmSync(truncated, token="not-the-token")
        with pytest.raises(ConfirmationMismatchError):
            merge(synced(), change, policy=POLICY, at=london(24, 2), by="n")


class TestEdges:
    def test_an_unknown_adapter_is_its_own_type(self) -> None:
        """The registry raises UnknownAdapterError, still a LookupError for older callers."""
        with pytest.raises(UnknownAdapterError) as caught:
            registry.get("source", "no-such-mis")
        assert isinstance(caught.value, LookupError)
        assert isinstance(caught.value, SourceTruthError)

    def test_an_unknown_adapter_kind_is_a_usage_error(self) -> None:
        """A kind that is not one of the registry's is the caller's mistake."""
        with pytest.raises(UsageError):
            registry.get("printer", "x")  # type: ignore[arg-type]

    def test_a_conflict_is_a_retryable_adapter_error(self) -> None:
        """ConflictError lives with the others: an AdapterError that a fresh load can retry."""
        error = ConflictError("changed since loaded")
        assert isinstance(error, AdapterError)
        assert error.retryable is True


WHEN = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
ERRORS = [
    OutOfOrderError("the book has a later change", latest=WHEN),
    MessageIdReusedError("id reused", message_id="trip", sent_at=WHEN),
    EncodingError("not UTF-8", offset=3, file="users.csv"),
    AdapterError("the server said no", retryable=True),
    ConflictError("changed since loaded"),
    SourceDataError("not a number", file="users.csv", line=2, field="phones", key="row-2"),
    RejectedFileError("wrong header", [SourceDataError("missing", line=1)], file="users.csv"),
    UnknownGroupError("no group named 'Governors'"),
]


class TestErrorsCrossProcesses:
    @pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
    def test_an_error_pickles_whole(self, error: Exception) -> None:
        """Every error comes back from pickle with its type, text and attributes (a worker's)."""
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error)
        assert str(back) == str(error)
        assert back.__dict__ == error.__dict__


class TestADocumentIsNeverQuoted:
    MARK = "Zq7Marker"

    def tampered(self, **changes: object) -> str:
        document = json.loads(dumps(Book()))
        document.update(changes)
        return json.dumps(document)

    def test_an_unknown_version_is_not_quoted(self) -> None:
        """F12: a book or audit file's version field is never echoed, whatever it holds."""
        with pytest.raises(SchemaVersionError) as caught:
            loads(self.tampered(version=self.MARK), Book)
        assert self.MARK not in str(caught.value)

    def test_another_type_is_not_quoted(self) -> None:
        """F12: the document's type field is never echoed."""
        with pytest.raises(SourceDataError) as caught:
            loads(self.tampered(type=self.MARK), Book)
        assert self.MARK not in str(caught.value)

    def test_a_malformed_document_names_paths_without_its_keys(self) -> None:
        """A malformed book names the failing paths, but not the keys in them (a contact id)."""
        data = json.loads(dumps(Book()))["data"]
        data["contacts"] = {f"gita.{self.MARK}@parent.test": {"bogus": 1}}
        with pytest.raises(SourceDataError) as caught:
            loads(self.tampered(data=data), Book)
        assert "data.contacts[...]" in str(caught.value)
        assert self.MARK not in str(caught.value)
