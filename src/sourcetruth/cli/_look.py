"""Looking at contacts: ``contacts`` lists them, ``show`` one, ``explain`` one field of one.

Each reads the book at ``--at`` (default now): the present, or any past time.
"""

from __future__ import annotations

from sourcetruth.cli._context import Context
from sourcetruth.cli._errors import OK
from sourcetruth.cli._names import require_contacts
from sourcetruth.cli._options import CONTACT, Subcommands, add_command
from sourcetruth.effective import contact_at, contacts_at, explain
from sourcetruth.model import FIELDS, Contact, Role

__all__ = ["register"]


def register(commands: Subcommands) -> None:
    """``contacts``, ``show`` and ``explain``."""
    sub = add_command(commands, "contacts", _contacts, "list contacts")
    sub.add_argument(
        "--search", help="only those whose id, name, phone number or email holds this text"
    )
    sub.add_argument("--role", choices=[r.value for r in Role], help="only those of this role")
    sub.add_argument("--departed", action="store_true", help="include departed contacts")
    sub = add_command(commands, "show", _show, "show a contact, with where each value came from")
    sub.add_argument("contact", help=CONTACT)
    sub = add_command(commands, "explain", _explain, "explain one field of a contact")
    sub.add_argument("contact", help=CONTACT)
    sub.add_argument("field", choices=FIELDS, help="the field")


def _searched(contact: Contact) -> str:
    """What ``contacts --search`` looks in: id, name, phones (also as bare digits), emails."""
    data = contact.data
    numbers = [p.number for p in data.phones]
    words = [contact.id, data.given_name, data.family_name, *numbers]
    words += ["".join(ch for ch in n if ch.isdigit()) for n in numbers]
    words += [e.address for e in data.emails]
    return "\n".join(words).casefold()


def _contacts(ctx: Context) -> int:
    needle = (ctx.args.search or "").strip().casefold()
    found = [
        c
        for c in contacts_at(ctx.viewed(), policy=ctx.policy, at=ctx.at)
        if (ctx.args.departed or not c.departed)
        and (ctx.args.role is None or c.data.role.value == ctx.args.role)
        and (
            not needle
            or needle in _searched(c)
            or needle in f"{c.data.given_name} {c.data.family_name}".casefold()
        )
    ]
    return ctx.listing(found, _line, f"{len(found)} contact(s).")


def _line(c: Contact) -> str:
    """A contact in the list: id, name, role, and whether departed."""
    name = f"{c.data.given_name} {c.data.family_name}".strip()
    gone = "  (departed)" if c.departed else ""
    return f"{c.id:<28} {name:<28} {c.data.role.value}{gone}"


def _show(ctx: Context) -> int:
    book = ctx.book.load()
    require_contacts(ctx, book, [ctx.args.contact])
    contact = contact_at(book, ctx.args.contact, policy=ctx.policy, at=ctx.at)
    if ctx.args.json:
        ctx.json(contact)
    else:
        ctx.lines(ctx.render.contact(contact))
    return OK


def _explain(ctx: Context) -> int:
    book = ctx.book.load()
    require_contacts(ctx, book, [ctx.args.contact])
    told = explain(book, ctx.args.contact, ctx.args.field, policy=ctx.policy, at=ctx.at)
    if ctx.args.json:
        ctx.json(told)
    else:
        ctx.lines(ctx.render.explanation(told))
    return OK
