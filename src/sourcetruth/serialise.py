"""One JSON converter for the whole model, versioned.

:func:`dumps` writes any model object (a book, a report, a snapshot) inside a
small envelope that names the format version and the type; :func:`loads`
reads it back to an equal object. Output is canonical: keys sorted, sets
sorted, times in UTC, so the same object always gives the same bytes whatever
the run, the machine or ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, TypeVar

from cattrs import Converter, transform_error
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import JsonConverter, make_converter

from sourcetruth.exceptions import SchemaVersionError, SourceDataError
from sourcetruth.model import Book, Record, Snapshot, utc

__all__ = ["FORMAT", "FORMAT_VERSION", "converter", "dumps", "loads"]

#: The ``format`` every serialised book and value names, beside :data:`FORMAT_VERSION`.
FORMAT: Final = "sourcetruth"
#: Bumped whenever the shape of serialised data changes incompatibly.
FORMAT_VERSION: Final = 1

T = TypeVar("T")


def _make_converter() -> JsonConverter:
    conv = make_converter(omit_if_default=True)

    def is_frozenset(t: Any) -> bool:
        return getattr(t, "__origin__", None) is frozenset or t is frozenset

    def sorted_items(_: Any, serving: Converter) -> Callable[[frozenset[Any]], list[Any]]:
        # Given the converter it serves, so that a copy (the command's JSON) keeps it too.
        return lambda value: sorted(serving.unstructure(item) for item in value)

    # Iteration order of a set of strings depends on PYTHONHASHSEED: sort it.
    conv.register_unstructure_hook_factory(is_frozenset, sorted_items)
    conv.register_unstructure_hook(datetime, lambda value: utc(value).isoformat())
    conv.register_structure_hook(datetime, lambda value, _: utc(datetime.fromisoformat(value)))
    # A book's current view is derived from its history, under a policy the
    # document does not hold: it is left out, and a book read back has none.
    omit = override(omit=True)
    conv.register_unstructure_hook(
        Book,
        make_dict_unstructure_fn(
            Book, conv, _cattrs_omit_if_default=True, view=omit, view_basis=omit
        ),
    )
    conv.register_structure_hook(
        Book, make_dict_structure_fn(Book, conv, view=omit, view_basis=omit)
    )
    # Digested records are built as they are written, whatever the sequence holding them.
    records = override(unstruct_hook=lambda value: [conv.unstructure(r, Record) for r in value])
    conv.register_unstructure_hook(
        Snapshot,
        make_dict_unstructure_fn(Snapshot, conv, _cattrs_omit_if_default=True, records=records),
    )
    return conv


#: The converter for every model class; configure nothing else.
converter: Final = _make_converter()


def to_primitive(obj: object) -> Any:
    """The JSON-ready form of *obj* (dicts, lists, strings, numbers)."""
    return converter.unstructure(obj)


def dumps(obj: object) -> str:
    """Serialise *obj* to canonical JSON inside a versioned envelope."""
    envelope = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "type": type(obj).__name__,
        "data": converter.unstructure(obj),
    }
    return json.dumps(envelope, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def loads(text: str | bytes, cls: type[T]) -> T:
    """Read what :func:`dumps` wrote back into an instance of *cls*."""
    try:
        envelope = json.loads(text)
    except ValueError as exc:
        msg = f"not JSON: {exc.__class__.__name__} at position {getattr(exc, 'pos', '?')}"
        raise SourceDataError(msg) from None
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        msg = f"not a {FORMAT} document"
        raise SourceDataError(msg)
    # Nothing read from the document is quoted: a file can hold anything.
    version = envelope.get("version")
    if type(version) is not int or version > FORMAT_VERSION:
        written = f"format version {version}" if type(version) is int else "an unknown version"
        msg = (
            f"written by {written}; this library reads up to {FORMAT_VERSION}: upgrade sourcetruth"
        )
        raise SchemaVersionError(msg)
    if envelope.get("type") != cls.__name__:
        msg = f"holds another kind of document, not a {cls.__name__}"
        raise SourceDataError(msg)
    try:
        return converter.structure(envelope["data"], cls)
    except Exception as exc:
        # cattrs names the paths that failed, never the values found there; a
        # path's keys are the document's (a contact id may be an address), so
        # they are left out too.
        paths = transform_error(exc, path="data")
        problems = "; ".join(_KEY.sub("[...]", path) for path in paths)
        msg = f"malformed {cls.__name__}: {problems}"
        raise SourceDataError(msg) from None


#: A mapping key in a cattrs error path: ``['mis:G9']`` or ``["x"]``.
_KEY: Final = re.compile(r"""\[(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]""")
