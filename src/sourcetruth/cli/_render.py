"""How the command-line program prints things: text for a person, JSON for a program."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, tzinfo
from typing import Any, Final

from cattrs.gen import make_dict_unstructure_fn
from cattrs.preconf.json import JsonConverter

from sourcetruth.audit import Why
from sourcetruth.effective import Explanation
from sourcetruth.model import (
    ADDRESS_BOOK,
    ADDRESS_FIELDS,
    Contact,
    ContactData,
    Email,
    EndedOverride,
    GroupDefinition,
    Override,
    OverrideLifetime,
    Phone,
    Provenance,
    ProvenanceKind,
    Relationship,
    Rule,
)
from sourcetruth.report import FieldChange, Report, Status
from sourcetruth.serialise import converter

__all__ = ["Renderer", "as_json", "primitive", "printable"]

#: Beyond this many lines of one kind (new contacts, field changes, departures, overrides
#: ended, values kept raw, ...), a report says how many more (``--json`` has all).
LIMIT = 40


#: What a terminal acts on instead of showing: the C0 controls (ESC, CR, the line
#: break, ...), DEL, the C1 controls, the Unicode bidi embeddings, overrides and
#: isolates (U+202A-U+202E, U+2066-U+2069), and the line and paragraph separators.
_BEYOND_C0: Final = "\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_CONTROLS: Final = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
#: Those of them that ``json.dumps`` leaves as they are (it escapes the C0 controls).
_CONTROLS_IN_JSON: Final = re.compile(f"[{_BEYOND_C0}]")


def printable(text: str) -> str:
    """*text* as the terminal may show it: each control character written as its escape.

    Every line of text output passes through here (``Context.say``, the error
    and notice lines), so a value from a file cannot clear the screen, retitle
    the terminal, reorder what follows it or forge a line: ESC shows as
    ``\\x1b``, a line break in a value as ``\\x0a``, a bidi override as
    ``\\u202e``. The line breaks between lines are the program's own.
    """
    if _CONTROLS.search(text) is None:
        return text
    return _CONTROLS.sub(lambda m: _escape(m.group(), short=True), text)


def _escape(char: str, *, short: bool) -> str:
    """``\\x1b`` (*short*, for a code below 256) or ``\\u001b``: JSON knows only the second."""
    code = ord(char)
    return f"\\x{code:02x}" if short and code < 0x100 else f"\\u{code:04x}"


def _make_converter() -> JsonConverter:
    """The JSON the program prints: the library's converter, with every key present.

    Unlike the store's format, no key is left out for holding its default, so a
    program reading ``--json`` finds the same keys every time. A value that
    holds one field of a contact (an override's value, a change's before and
    after, an explanation's value) is that field's value itself.
    """
    conv = converter.copy(omit_if_default=False)

    def one_field(cls: type[Any], names: tuple[str, ...], field: Callable[[Any], str]) -> None:
        base = make_dict_unstructure_fn(cls, conv)

        def hook(value: Any) -> dict[str, Any]:
            out: dict[str, Any] = base(value)
            for name in names:
                data = getattr(value, name)
                out[name] = None if data is None else conv.unstructure(data.get(field(value)))
            return out

        conv.register_unstructure_hook(cls, hook)

    one_field(Override, ("value", "base"), lambda o: str(o.field))
    one_field(FieldChange, ("before", "after"), lambda c: str(c.field))
    one_field(Explanation, ("value", "later_value"), lambda e: str(e.field))
    one_field(Why, ("later_value",), lambda w: ADDRESS_FIELDS[w.channel])
    return conv


_CONVERTER: Final = _make_converter()


def primitive(value: object) -> Any:
    """*value* as the program prints it in JSON (dicts, lists, strings, numbers)."""
    return _CONVERTER.unstructure(value)


def as_json(value: object) -> str:
    """*value* as JSON: letters as themselves, every control and bidi character escaped.

    ``json.dumps`` escapes the C0 controls; DEL, the C1 controls and the bidi
    and separator characters are written as ``\\u`` escapes here (they occur
    only inside strings), so the document reads back the same values and is
    as safe on a terminal as the text output.
    """
    text = json.dumps(primitive(value), indent=2, sort_keys=True, ensure_ascii=False)
    return _CONTROLS_IN_JSON.sub(lambda m: _escape(m.group(), short=False), text)


class Renderer:
    """Text output in the book's timezone."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        # A plan's provenance names the same few sync times for every contact.
        self._times: dict[datetime, str] = {}

    def time(self, value: datetime | None) -> str:
        if value is None:
            return "-"
        shown = self._times.get(value)
        if shown is None:
            shown = self._times[value] = f"{value.astimezone(self.zone):%a %d %b %Y %H:%M}"
        return shown

    def value(self, data: ContactData, field: str) -> str:
        value = data.get(field)
        if isinstance(value, tuple):
            return ", ".join(_item(v) for v in value) or "(none)"
        if hasattr(value, "value"):
            return str(value.value)
        return str(value) if value else "(empty)"

    def provenance(self, p: Provenance) -> str:
        if p.kind is ProvenanceKind.OVERRIDE:
            return f"override by {p.by} at {self.time(p.since)}, over {p.source}:{p.record_key}"
        if p.kind is ProvenanceKind.DEFAULT:
            return "nowhere: no source holds a value for it"
        if p.source == ADDRESS_BOOK:
            return f"{p.source}:{p.record_key}, saved by {p.by} {self.time(p.since)}"
        line = (
            f"{p.source}:{p.record_key}, sync {p.sync} "
            f"(read {self.time(p.read_at)}, applied {self.time(p.applied_at)})"
        )
        if p.since is not None and p.since != p.applied_at:
            # since: when the version of the record holding the value was applied.
            line += f"; record unchanged since {self.time(p.since)}"
        return line

    def override(self, o: Override) -> str:
        ends = {
            OverrideLifetime.NEXT_SYNC: f"until the next {o.source} sync",
            OverrideLifetime.UNTIL: f"until {self.time(o.until)} or the next {o.source} sync",
            OverrideLifetime.SOURCE_CHANGE: f"while {o.source} keeps its value",
        }[o.lifetime]
        return (
            f"{o.contact_id} {o.field} = {self.value(o.value, o.field)} "
            f"(was {self.value(o.base, o.field)}), set by {o.set_by} {self.time(o.set_at)}, {ends}"
        )

    def rule(self, rule: Rule) -> str:
        parts = []
        if rule.roles:
            parts.append("role " + " or ".join(sorted(r.value for r in rule.roles)))
        if rule.year_groups:
            parts.append("year " + " or ".join(sorted(rule.year_groups)))
        if rule.registration_groups:
            parts.append("registration group " + " or ".join(sorted(rule.registration_groups)))
        selected = ", ".join(parts) or "everyone"
        if not rule.guardians_of:
            return selected
        priority = "" if rule.max_priority is None else f" up to priority {rule.max_priority}"
        pupils = "all pupils" if not parts else f"pupils in {selected}"
        return f"guardians{priority} of {pupils}"

    def group(self, group: GroupDefinition) -> str:
        parts = []
        if group.members:
            parts.append("members " + ", ".join(sorted(group.members)))
        if group.rule is not None:
            parts.append(f"rule: {self.rule(group.rule)}")
        return f"{group.name}: {'; '.join(parts)}"

    def contact(self, contact: Contact) -> list[str]:
        data = contact.data
        name = f"{data.given_name} {data.family_name}".strip() or "(no name)"
        head = f"{contact.id}  {name}  ({data.role.value}; home {contact.home})"
        if contact.departed:
            head += f"  DEPARTED {self.time(contact.departed_at)}"
        lines = [head]
        for field, provenance in contact.provenance.items():
            lines.append(f"  {field:<19} {self.value(data, field)}")
            lines.append(f"  {'':<19} from {self.provenance(provenance)}")
        for o in contact.overrides:
            lines.append(f"  override: {self.override(o)}")
        return lines

    def explanation(self, e: Explanation) -> list[str]:
        lines = [
            f"{e.contact_id} {e.field} at {self.time(e.at)}: {self.value(e.value, e.field)}",
            f"  from {self.provenance(e.provenance)}",
        ]
        for event in e.overrides:
            ended = (
                "in force"
                if event.ended is None
                else f"ended {event.ended.outcome.value} {self.time(event.ended.ended_at)}"
            )
            lines.append(f"  override: {self.override(event.override)}; {ended}")
        if e.later is not None:
            lines.append(
                f"  changed later at the source: applied {self.time(e.later.applied_at)} "
                f"(sync {e.later.sync})"
            )
        return lines

    @staticmethod
    def what(r: Report) -> str:
        """What a report is about: ``mis sync 4``, ``address-book-save``."""
        if r.source is None:
            return r.change
        return f"{r.source} sync" + ("" if r.sync is None else f" {r.sync}")

    @staticmethod
    def counts(r: Report) -> str:
        """How much it changed; a new contact's fields are not counted as changes.

        A held sync changed nothing: it says how many it would have made depart.
        """
        created = set(r.created)
        changed = sum(1 for c in r.changes if c.contact_id not in created)
        departed = (
            f"{len(r.departed)} departed" if r.held is None else f"{r.held.departures} would depart"
        )
        return (
            f"{len(r.created)} new, {changed} field change(s), "
            f"{departed}, {len(r.returned)} returned"
        )

    def report(self, r: Report, *, dry_run: bool = False) -> list[str]:
        """A report as lines: a headline, then each kind of line, limited (``--json`` has all)."""
        status = _DRY_RUN[r.status] if dry_run else r.status.value
        lines = [f"{self.what(r)}: {status}; {self.counts(r)}"]
        for items, line in self._kinds(r, would="would be " if dry_run else ""):
            lines += _limited(map(line, items), len(items))
        if r.suppressed:
            lines.append(f"  skipped {r.suppressed} erased record(s) (suppressed)")
        if r.held is not None:
            lines.append(f"  HELD: {r.held.reason}")
            lines += _limited(
                (f"  would depart {c}" for c in r.held.departing), len(r.held.departing)
            )
        if dry_run and r.status is Status.APPLIED:
            lines.append("  Nothing was written (dry run).")
        return lines

    def _kinds(self, r: Report, *, would: str) -> list[tuple[Sequence[Any], Callable[[Any], str]]]:
        """Each kind of line a report has, in order: its items, and the line of one item."""
        # A new contact is one line, not one per field (--json has every field).
        created = set(r.created)
        names: dict[str, dict[str, str]] = {}
        for c in r.changes:
            if c.contact_id in created:
                names.setdefault(c.contact_id, {})[c.field] = self.value(c.after, c.field)
        return [
            (r.created, lambda c: f"  new {c}: {_who(names.get(c, {}))}"),
            ([c for c in r.changes if c.contact_id not in created], self._changed),
            (r.departed, lambda c: f"  departed {c}"),
            (r.returned, lambda c: f"  returned {c}"),
            (r.overrides_set, lambda o: f"  override {would}set: {self.override(o)}"),
            (r.overrides_ended, lambda e: self._ended(e, would)),
            (r.overrides_kept, lambda o: f"  override kept: {o.contact_id} {o.field}"),
            (
                r.unnormalised,
                lambda u: f"  kept raw: {u.record} {u.field}[{u.index}]: {u.problem}",
            ),
            (
                r.duplicates,
                lambda d: (
                    f"  possible duplicate: {d.record} and {d.other} ({', '.join(d.reasons)})"
                ),
            ),
            (r.erased, lambda erased: f"  erased {erased}"),
        ]

    def _changed(self, c: FieldChange) -> str:
        before = "(none)" if c.before is None else self.value(c.before, c.field)
        return f"  changed {c.contact_id} {c.field}: {before} -> {self.value(c.after, c.field)}"

    @staticmethod
    def _ended(e: EndedOverride, would: str) -> str:
        lost = " (update it at the source)" if e.outcome.value == "lost" else ""
        return (
            f"  override of {e.override.field} on {e.override.contact_id} {would}ended: "
            f"{e.outcome.value}{lost}"
        )


#: A dry run's status, for each status a report can have.
_DRY_RUN: Final = {
    Status.APPLIED: "dry run, would apply",
    Status.HELD: "dry run, would be held",
    Status.NO_CHANGE: "dry run, nothing would change",
}


def _who(fields: dict[str, str]) -> str:
    """A new contact's name and role, from the values its report gives."""
    name = " ".join(
        v for v in (fields.get("given_name"), fields.get("family_name")) if v and v != "(empty)"
    )
    role = fields.get("role")
    return f"{name or '(no name)'}" + (f" ({role})" if role else "")


def _item(value: object) -> str:
    if isinstance(value, Phone | Email):
        text = value.number if isinstance(value, Phone) else value.address
        return f"{text} ({value.type.value})"
    if isinstance(value, Relationship):
        flags = [f"priority {value.priority}"]
        if not value.parental_responsibility:
            flags.append("no parental responsibility")
        if not value.receives_messages:
            flags.append("receives no messages")
        return f"{value.pupil} ({', '.join(flags)})"
    return str(value)


def _limited(lines: Iterable[str], count: int) -> list[str]:
    shown: list[str] = []
    for line in lines:
        if len(shown) == LIMIT:
            shown.append(f"  ... and {count - LIMIT} more (--json shows all)")
            break
        shown.append(line)
    return shown
