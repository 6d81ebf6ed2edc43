"""Local edits: the address book's contacts (and vCards), and temporary overrides.

An edit to a field its contact's source covers is an override, which the
source's next sync ends (rule 3); an address-book contact's edit is its value.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from typing import Any

from sourcetruth.adapters.sources.base import address_book_saves
from sourcetruth.changes import AddressBookRemove, AddressBookSave, ClearOverride, SetOverride
from sourcetruth.cli._context import Context, after_change, apply
from sourcetruth.cli._errors import OK
from sourcetruth.cli._files import input_path, output_path
from sourcetruth.cli._kinds import check_kind
from sourcetruth.cli._names import require_contacts
from sourcetruth.cli._options import CONTACT, Subcommands, add_actions, add_command
from sourcetruth.cli._sources import notices, reading_input
from sourcetruth.cli._typed import check_typed
from sourcetruth.effective import contact_at, contacts_at
from sourcetruth.exceptions import SourceDataError, UsageError
from sourcetruth.model import (
    ADDRESS_BOOK,
    FIELDS,
    ContactData,
    Email,
    EmailType,
    OverrideLifetime,
    Phone,
    PhoneType,
    Record,
    Role,
    record_id,
    split_record_id,
)

__all__ = ["register"]


def register(commands: Subcommands) -> None:
    """``address-book add|edit|remove|import|export`` and ``override set|clear``."""
    _register_address_book(add_actions(commands, "address-book", "edit the local address book"))
    _register_override(add_actions(commands, "override", "set or clear a temporary override"))


def _register_address_book(actions: Subcommands) -> None:
    sub = add_command(actions, "add", _address_book_add, "add a contact")
    sub.add_argument("--key", help="its key (default: a new random one)")
    _add_data_options(sub)
    sub = add_command(
        actions,
        "edit",
        _address_book_edit,
        "change fields (on a source's contact: a temporary override)",
    )
    sub.add_argument("contact", help=CONTACT)
    _add_data_options(sub)
    sub = add_command(actions, "remove", _address_book_remove, "remove an address-book contact")
    sub.add_argument("contact", help=CONTACT)
    sub = add_command(actions, "import", _address_book_import, "import a vCard file")
    sub.add_argument("file", help="the vCard (.vcf) file")
    sub = add_command(
        actions,
        "export",
        _address_book_export,
        "export the address book as vCard",
        json_option=False,
    )
    sub.add_argument("file", help="the vCard (.vcf) file to write")
    sub.add_argument(
        "--version", choices=("3.0", "4.0"), default="4.0", help="the vCard version to write"
    )
    sub.add_argument("--force", action="store_true", help="replace the file if it exists")


def _register_override(actions: Subcommands) -> None:
    sub = add_command(actions, "set", _override_set, "override a field a source covers")
    sub.add_argument("contact", help=CONTACT)
    sub.add_argument("field", choices=FIELDS, help="the field")
    sub.add_argument("values", nargs="+", help="the value (several for phones or emails)")
    ends = sub.add_mutually_exclusive_group()
    ends.add_argument("--until", help="end at this time, or at the next sync if sooner")
    ends.add_argument(
        "--while-source-unchanged",
        action="store_true",
        help="keep across syncs while the source keeps the value it had",
    )
    sub = add_command(actions, "clear", _override_clear, "end an override now")
    sub.add_argument("contact", help=CONTACT)
    sub.add_argument("field", choices=FIELDS, help="the field")


def _add_data_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--given", help="given name")
    sub.add_argument("--family", help="family name")
    sub.add_argument("--role", choices=[r.value for r in Role], help="role")
    sub.add_argument("--mobile", action="append", help="a mobile number (repeatable)")
    sub.add_argument("--phone", action="append", help="a home phone number")
    sub.add_argument("--work-phone", action="append", help="a work phone number")
    sub.add_argument("--email", action="append", help="an email address (repeatable)")
    sub.add_argument("--work-email", action="append", help="a work email address")
    sub.add_argument("--year", help="year group")
    sub.add_argument("--reg", help="registration group")
    sub.add_argument("--clear", action="append", choices=FIELDS, help="empty this field")


def _contact_data(args: argparse.Namespace, region: str) -> tuple[ContactData, frozenset[str]]:
    """The fields the options give, and which fields they name (numbers read in *region*)."""
    values: dict[str, Any] = {}
    if args.given is not None:
        values["given_name"] = args.given
    if args.family is not None:
        values["family_name"] = args.family
    if args.role is not None:
        values["role"] = Role(args.role)
    values.update(_phones_and_emails(args, region))
    if args.year is not None:
        values["year_group"] = args.year
    if args.reg is not None:
        values["registration_group"] = args.reg
    for name in args.clear or ():
        if name in values:
            msg = f"--clear {name} and a value for {name} contradict each other"
            raise UsageError(msg)
        values[name] = ContactData().get(name)
    return ContactData(**values), frozenset(values)


def _phones_and_emails(args: argparse.Namespace, region: str) -> dict[str, Any]:
    """The phones and emails the options give, each of its type; none empty, each usable."""
    for option, given, field in (
        ("--mobile", args.mobile, "phones"),
        ("--phone", args.phone, "phones"),
        ("--work-phone", args.work_phone, "phones"),
        ("--email", args.email, "emails"),
        ("--work-email", args.work_email, "emails"),
    ):
        if any(not value.strip() for value in given or ()):
            msg = f"{option}: an empty value; to empty the field, use --clear {field}"
            raise UsageError(msg)
        check_typed(option, field, given or (), region)
    values: dict[str, Any] = {}
    phones = [Phone(n, PhoneType.MOBILE) for n in args.mobile or ()]
    phones += [Phone(n, PhoneType.HOME) for n in args.phone or ()]
    phones += [Phone(n, PhoneType.WORK) for n in args.work_phone or ()]
    if phones:
        values["phones"] = tuple(phones)
    emails = [Email(a, EmailType.HOME) for a in args.email or ()]
    emails += [Email(a, EmailType.WORK) for a in args.work_email or ()]
    if emails:
        values["emails"] = tuple(emails)
    return values


def _address_book_add(ctx: Context) -> int:
    data, _ = _contact_data(ctx.args, ctx.policy.region_of(ADDRESS_BOOK))
    if not (data.given_name or data.family_name):
        msg = "a new contact needs a name: --given and/or --family"
        raise UsageError(msg)
    key = ctx.args.key
    if key is not None and not key.strip():
        msg = "--key: give a key, or leave --key out for a new random one"
        raise UsageError(msg)
    contact_id = record_id(ADDRESS_BOOK, key or uuid.uuid4().hex[:12])
    if contact_id in ctx.book.load().contacts:
        msg = f"{contact_id} already exists: use 'address-book edit'"
        raise UsageError(msg)
    result = apply(ctx, AddressBookSave(contact_id, data))
    return after_change(ctx, result.report, f"Saved {contact_id}.")


def _address_book_edit(ctx: Context) -> int:
    data, named = _contact_data(ctx.args, _region(ctx, ctx.args.contact))
    if not named:
        msg = "say what to change: --email, --mobile, --given, --clear FIELD, ..."
        raise UsageError(msg)
    book = ctx.book.load()
    # A save would make a new contact: that is 'add', with a name.
    require_contacts(ctx, book, [ctx.args.contact])
    if "relationships" in named:
        # As 'override set' says: a source's links between guardians and pupils are the
        # source's to change, even where the source does not cover them.
        home = contact_at(book, ctx.args.contact, policy=ctx.policy, at=ctx.change_at).home
        if split_record_id(home)[0] != ADDRESS_BOOK:
            msg = (
                f"{ctx.args.contact}'s home is {split_record_id(home)[0]}: links between "
                "guardians and pupils are changed at the source"
            )
            raise UsageError(msg)
    change = AddressBookSave(ctx.args.contact, data, named)
    result = apply(ctx, change)
    return after_change(
        ctx, result.report, f"Saved {', '.join(sorted(named))} of {ctx.args.contact}."
    )


def _address_book_remove(ctx: Context) -> int:
    require_contacts(ctx, ctx.book.load(), [ctx.args.contact])
    result = apply(ctx, AddressBookRemove(ctx.args.contact))
    return after_change(ctx, result.report, f"Removed {ctx.args.contact} (restorable by a save).")


def _address_book_import(ctx: Context) -> int:
    from sourcetruth.adapters.sources.vcard import VCardAdapter

    path = input_path(ctx.args.file)
    check_kind("address-book import", "vcard", path, ctx.args.file)
    with reading_input():
        reading = VCardAdapter(path).read_entries()
    notices(ctx, reading.notices)
    saves = address_book_saves(reading.entries)
    if not saves:
        msg = "the file holds no vCards"
        raise SourceDataError(msg, file=ctx.args.file)
    with ctx.progress(f"importing {len(saves)} card(s)"):
        result = apply(ctx, saves)
    return after_change(ctx, result.report, f"Imported {len(saves)} card(s).")


def _address_book_export(ctx: Context) -> int:
    from sourcetruth.adapters.sources.vcard import VCardAdapter

    target = output_path(ctx, ctx.args.file)
    entries = []
    for contact in contacts_at(ctx.book.load(), policy=ctx.policy, at=ctx.at):
        if contact.home.startswith(f"{ADDRESS_BOOK}:") and not contact.departed:
            entries.append(Record(contact.home.partition(":")[2], contact.data))
    VCardAdapter(target, version=ctx.args.version).write_entries(entries)
    ctx.say(f"Wrote {len(entries)} address-book contact(s) to {ctx.args.file}.")
    return OK


def _region(ctx: Context, contact_id: str) -> str:
    """The phone region of the source a contact id names: its typed numbers are read in it."""
    return ctx.policy.region_of(contact_id.partition(":")[0] or None)


def _override_value(field: str, values: Sequence[str], region: str) -> ContactData:
    if any(not value.strip() for value in values):
        msg = f"an empty value for {field}: give the value the field should hold"
        raise UsageError(msg)
    check_typed(field, field, values, region)
    if field == "phones":
        return ContactData(phones=tuple(Phone(v) for v in values))
    if field == "emails":
        return ContactData(emails=tuple(Email(v) for v in values))
    if field == "relationships":
        msg_0 = "links between guardians and pupils are changed at the source"
        raise UsageError(msg_0)
    if len(values) != 1:
        msg = f"{field} takes one value"
        raise UsageError(msg)
    if field == "role":
        try:
            return ContactData(role=Role(values[0]))
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            msg_0 = f"a role is one of {roles}"
            raise UsageError(msg_0) from None
    texts: dict[str, Any] = {field: values[0]}
    return ContactData(**texts)


def _override_set(ctx: Context) -> int:
    args = ctx.args
    lifetime = OverrideLifetime.NEXT_SYNC
    until = None
    if args.until:
        lifetime, until = OverrideLifetime.UNTIL, ctx.time(args.until, "--until")
    elif args.while_source_unchanged:
        lifetime = OverrideLifetime.SOURCE_CHANGE
    require_contacts(ctx, ctx.book.load(), [args.contact])
    change = SetOverride(
        args.contact,
        args.field,
        _override_value(args.field, args.values, _region(ctx, args.contact)),
        lifetime,
        until,
    )
    result = apply(ctx, change)
    return after_change(ctx, result.report, f"Override set on {args.field} of {args.contact}.")


def _override_clear(ctx: Context) -> int:
    require_contacts(ctx, ctx.book.load(), [ctx.args.contact])
    change = ClearOverride(ctx.args.contact, ctx.args.field)
    result = apply(ctx, change)
    return after_change(ctx, result.report, "Override cleared.")
