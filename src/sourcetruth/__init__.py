"""sourcetruth: source-of-truth reconciliation of contact data.

Importing the package loads the pure core only: no adapter, no file, no
clock. The three names of the sending loop (:func:`send`,
:class:`FileDeliveryLog`, :class:`MemoryDeliveryLog`) live in
:mod:`sourcetruth.app.sending` and are loaded on first use.
"""

from typing import TYPE_CHECKING, Any

from sourcetruth import _moved
from sourcetruth.audience import Recipient, Recipients, Unreachable, recipients
from sourcetruth.audit import AuditRecord, Outcome, Why, why
from sourcetruth.changes import (
    AddressBookRemove,
    AddressBookSave,
    ClearOverride,
    ConfirmSync,
    Erase,
    Link,
    RefreshView,
    RemoveGroup,
    SetGroup,
    SetOverride,
    Unlink,
)
from sourcetruth.digested import DigestedRecords
from sourcetruth.duplicates import possible_duplicates
from sourcetruth.effective import (
    Explanation,
    OverrideEvent,
    comparable,
    contact_at,
    contacts_at,
    explain,
)
from sourcetruth.exceptions import (
    AdapterError,
    ConfirmationMismatchError,
    ConflictError,
    EmptySnapshotError,
    EncodingError,
    MessageIdReusedError,
    NotInBookError,
    OutOfOrderError,
    RejectedFileError,
    SchemaVersionError,
    SourceDataError,
    SourceTruthError,
    StaleSnapshotError,
    UnknownAdapterError,
    UnknownContactError,
    UnknownGroupError,
    UnknownRecordError,
    UsageError,
    format_errors,
)
from sourcetruth.merge import dry_run, merge
from sourcetruth.messages import (
    Delivery,
    DeliveryResult,
    DeliveryStatus,
    Envelope,
    Message,
    Plan,
    SendMode,
    plan,
)
from sourcetruth.model import (
    ADDRESS_BOOK,
    EXPIRY,
    FIELDS,
    Book,
    Channel,
    Contact,
    ContactData,
    ContactEntry,
    Email,
    EmailType,
    EndedOverride,
    GroupDefinition,
    GroupVersion,
    Membership,
    Override,
    OverrideLifetime,
    OverrideOutcome,
    Phone,
    PhoneType,
    Provenance,
    ProvenanceKind,
    Record,
    RecordState,
    RecordVersion,
    Redirect,
    Relationship,
    Role,
    Rule,
    Snapshot,
    SnapshotKind,
    SourceKind,
    SyncRecord,
    record_id,
)
from sourcetruth.normalise import Normalised, normalise_email, normalise_phone
from sourcetruth.policy import DepartureGuard, Policy, Schedule, Source
from sourcetruth.report import (
    FieldChange,
    Held,
    MergeResult,
    PossibleDuplicate,
    Report,
    Status,
    Unnormalised,
)
from sourcetruth.schedule import next_sync, when_effective
from sourcetruth.serialise import FORMAT_VERSION, dumps, loads
from sourcetruth.view import CurrentContact, view_basis

if TYPE_CHECKING:
    from sourcetruth.app.sending import FileDeliveryLog, MemoryDeliveryLog, send

__version__ = "0.1.0"

_moved.install()

#: Names exported here whose module does I/O: imported when first asked for.
_LAZY = {
    "FileDeliveryLog": "sourcetruth.app.sending",
    "MemoryDeliveryLog": "sourcetruth.app.sending",
    "send": "sourcetruth.app.sending",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'sourcetruth' has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "ADDRESS_BOOK",
    "EXPIRY",
    "FIELDS",
    "FORMAT_VERSION",
    "AdapterError",
    "AddressBookRemove",
    "AddressBookSave",
    "AuditRecord",
    "Book",
    "Channel",
    "ClearOverride",
    "ConfirmSync",
    "ConfirmationMismatchError",
    "ConflictError",
    "Contact",
    "ContactData",
    "ContactEntry",
    "CurrentContact",
    "Delivery",
    "DeliveryResult",
    "DeliveryStatus",
    "DepartureGuard",
    "DigestedRecords",
    "Email",
    "EmailType",
    "EmptySnapshotError",
    "EncodingError",
    "EndedOverride",
    "Envelope",
    "Erase",
    "Explanation",
    "FieldChange",
    "FileDeliveryLog",
    "GroupDefinition",
    "GroupVersion",
    "Held",
    "Link",
    "Membership",
    "MemoryDeliveryLog",
    "MergeResult",
    "Message",
    "MessageIdReusedError",
    "Normalised",
    "NotInBookError",
    "OutOfOrderError",
    "Outcome",
    "Override",
    "OverrideEvent",
    "OverrideLifetime",
    "OverrideOutcome",
    "Phone",
    "PhoneType",
    "Plan",
    "Policy",
    "PossibleDuplicate",
    "Provenance",
    "ProvenanceKind",
    "Recipient",
    "Recipients",
    "Record",
    "RecordState",
    "RecordVersion",
    "Redirect",
    "RefreshView",
    "RejectedFileError",
    "Relationship",
    "RemoveGroup",
    "Report",
    "Role",
    "Rule",
    "Schedule",
    "SchemaVersionError",
    "SendMode",
    "SetGroup",
    "SetOverride",
    "Snapshot",
    "SnapshotKind",
    "Source",
    "SourceDataError",
    "SourceKind",
    "SourceTruthError",
    "StaleSnapshotError",
    "Status",
    "SyncRecord",
    "UnknownAdapterError",
    "UnknownContactError",
    "UnknownGroupError",
    "UnknownRecordError",
    "Unlink",
    "Unnormalised",
    "Unreachable",
    "UsageError",
    "Why",
    "__version__",
    "comparable",
    "contact_at",
    "contacts_at",
    "dry_run",
    "dumps",
    "explain",
    "format_errors",
    "loads",
    "merge",
    "next_sync",
    "normalise_email",
    "normalise_phone",
    "plan",
    "possible_duplicates",
    "recipients",
    "record_id",
    "send",
    "view_basis",
    "when_effective",
    "why",
]
