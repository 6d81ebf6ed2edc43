"""Reading what people write (a settings file, a CSV mapping) with the package's one converter.

:data:`converter` is :data:`sourcetruth.serialise.converter`, copied once and
made strict for hand-written files: a key a class does not have is an error
(``forbid_extra_keys``), and nothing is coerced: ``"5"`` is not a number,
``1.5`` not a whole one, ``0`` not ``false``, and a string is not a list.
A field's attrs validator runs as its key is read, so what it says is placed
at that key; what a class's ``__attrs_post_init__`` says is placed at the
class's own table. Every class keeps its checks: they are the ones the Python
API runs, read here with a key path.

:func:`structure` turns cattrs' errors into :class:`Problem` s: a key path in
the file's words (``sources.mis.kind``, ``phones[1].column``,
``role_values.mum``) and a message that never holds the value found there,
which may be personal data or a secret. So a validator of a class read here
says what is wrong without the value too.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import Enum
from typing import Any, Final, TypeVar, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from attrs import frozen
from cattrs import BaseValidationError, ClassValidationError, Converter, IterableValidationError
from cattrs.cols import homogenous_tuple_structure_factory, is_mapping, mapping_structure_factory
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from sourcetruth.exceptions import SourceTruthError, UsageError
from sourcetruth.serialise import converter as _package_converter

__all__ = ["CHARACTER", "REQUIRED", "Problem", "StructureError", "converter", "hint", "structure"]

T = TypeVar("T")
Hook = Callable[[Any, Any], Any]

#: The attrs metadata key whose text follows "is required" when a required key is missing.
REQUIRED: Final = "required"
#: The attrs metadata key of a field that holds one character (a delimiter, a quote):
#: a space or a tab is its value, where any other string must not be blank.
CHARACTER: Final = "character"


@frozen
class Problem:
    """One mistake: where (a key path; empty for the whole document) and what, never the value."""

    path: str
    message: str


class StructureError(Exception):
    """Data that a class does not take; ``problems`` names each mistake, first the first found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))


def hint(name: str, known: Sequence[str]) -> str:
    """`` (did you mean X?)`` for the known name closest to *name*, if one is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def structure(data: object, cls: type[T], *, path: str = "") -> T:
    """*data* as a *cls*, or a :class:`StructureError` naming every problem by key path.

    *path* is where *data* sits in its file, for the problems' paths.
    """
    try:
        return converter.structure(data, cls)
    except (BaseValidationError, SourceTruthError) as error:
        raise StructureError(list(_problems(error, path))) from None


# --------------------------------------------------------------------------
# What each kind of value must be


def _plain(accepts: Callable[[object], bool], message: str) -> Hook:
    """A hook that takes a value as it is, if *accepts* it, and says *message* if not."""

    def structure(value: object, _type: object) -> Any:
        if not accepts(value):
            raise UsageError(message)
        return value

    return structure


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: Each plain type and what a value of it must be: nothing is coerced.
_PLAIN: Final[Mapping[type, Hook]] = {
    str: _plain(_is_text, "must be a non-empty string"),
    int: _plain(_is_whole, "must be a whole number"),
    float: _plain(_is_number, "must be a number"),
    bool: _plain(lambda value: isinstance(value, bool), "must be true or false"),
}
#: A field of one character (see :data:`CHARACTER`): a space is a value.
_character: Final = _plain(lambda value: isinstance(value, str), "must be a string")


def _zone(value: object, _type: object) -> ZoneInfo:
    name = _PLAIN[str](value, str)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a folder of the zone database ("Europe"), or a name too long for a file.
        msg = "is not an IANA timezone name (like Europe/London)"
        raise UsageError(msg) from None


def _is_enum(type_: Any) -> bool:
    return isinstance(type_, type) and issubclass(type_, Enum)


def _enum(cls: type[Enum], _converter: Converter) -> Hook:
    msg = f"must be one of {', '.join(str(member.value) for member in cls)}"

    def structure(value: object, _type: object) -> Enum:
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except (ValueError, TypeError):
            raise UsageError(msg) from None

    return structure


def _is_list(type_: Any) -> bool:
    origin = get_origin(type_)
    if origin is tuple:
        args = get_args(type_)
        return len(args) == 2 and args[1] is Ellipsis
    return origin in (list, frozenset, set)


def _list(type_: Any, conv: Converter) -> Hook:
    """A list in the file (an array of TOML): of strings as a whole, of tables item by item."""
    make: Callable[[Any], Any] = get_origin(type_)
    item = get_args(type_)[0]
    if item is str:

        def strings(value: object, _type: object) -> Any:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                msg = "must be a list of strings"
                raise UsageError(msg)
            return make(value)

        return strings
    items = homogenous_tuple_structure_factory(tuple[item, ...], conv)  # type: ignore[valid-type]
    msg = f"must be a list of {'tables' if attrs.has(item) else 'values'}"

    def structure(value: object, _type: object) -> Any:
        if not isinstance(value, list | tuple):
            raise UsageError(msg)
        return make(items(value, tuple[item, ...]))  # type: ignore[valid-type]

    return structure


def _from_table(inner: Hook, type_: Any) -> Hook:
    """*inner*, for a value that is a table (a mapping); "must be a table" for any other."""

    def structure(value: object, _type: object) -> Any:
        if not isinstance(value, Mapping):
            msg = "must be a table"
            raise UsageError(msg)
        return inner(value, type_)

    return structure


def _table(type_: Any, conv: Converter) -> Hook:
    return _from_table(mapping_structure_factory(type_, conv), type_)


def _class(cls: type[Any], conv: Converter) -> Hook:
    """An attrs class from a table, each field's validator run as its key is read."""
    attrs.resolve_types(cls)
    checked: dict[str, Any] = {
        a.name: override(struct_hook=_checked(a, conv))
        for a in attrs.fields(cls)
        if a.init and (a.validator is not None or a.metadata.get(CHARACTER))
    }
    return _from_table(make_dict_structure_fn(cls, conv, **checked), cls)


def _checked(field: attrs.Attribute[Any], conv: Converter) -> Hook:
    """*field*'s value read by its type (or as one character), then given to its validator."""
    hook = _character if field.metadata.get(CHARACTER) else conv.get_structure_hook(field.type)
    validator = field.validator
    if validator is None:
        return hook
    if isinstance(field.converter, attrs.Converter):
        msg = f"{field.name}: a validated field's converter must be a plain function"
        raise TypeError(msg)
    convert: Callable[[Any], Any] = field.converter or _unchanged

    def structure(value: object, type_: object) -> Any:
        structured = hook(value, type_)
        validator(None, field, convert(structured))
        return structured

    return structure


def _unchanged(value: T) -> T:
    return value


def _make() -> Converter:
    conv = _package_converter.copy(forbid_extra_keys=True)
    for plain, hook in _PLAIN.items():
        conv.register_structure_hook(plain, hook)
    conv.register_structure_hook(ZoneInfo, _zone)
    conv.register_structure_hook_factory(_is_enum, _enum)
    conv.register_structure_hook_factory(_is_list, _list)
    conv.register_structure_hook_factory(is_mapping, _table)
    conv.register_structure_hook_factory(attrs.has, _class)
    return conv


#: The package's one converter (:data:`sourcetruth.serialise.converter`), strict for files.
converter: Final = _make()


# --------------------------------------------------------------------------
# cattrs' errors as problems


def _key(path: str, name: object) -> str:
    return f"{path}.{name}" if path else str(name)


def _problems(
    error: BaseException, path: str, field: attrs.Attribute[Any] | None = None
) -> Iterator[Problem]:
    if isinstance(error, ClassValidationError):
        noted, others = error.group_exceptions()
        # Unknown keys first: a typo explains the required key found missing beside it.
        for other in others:
            if isinstance(other, ForbiddenExtraKeysError):
                yield from _unknown(other, path)
        fields = attrs.fields_dict(error.cl) if attrs.has(error.cl) else {}
        for inner, note in noted:
            yield from _problems(inner, _key(path, note.name), fields.get(note.name))
        for other in others:
            if not isinstance(other, ForbiddenExtraKeysError):
                yield from _problems(other, path)
    elif isinstance(error, IterableValidationError):
        mapping = is_mapping(error.cl)
        noted_items, others = error.group_exceptions()
        for inner, item in noted_items:
            index = item.index
            step = (
                _key(path, index)
                if mapping or not isinstance(index, int)
                else f"{path}[{index + 1}]"
            )
            yield from _problems(inner, step)
        for other in others:
            yield from _problems(other, path)
    elif isinstance(error, KeyError):
        why = field.metadata.get(REQUIRED) if field is not None else None
        yield Problem(path, f"is required: {why}" if why else "is required")
    elif isinstance(error, SourceTruthError):
        yield Problem(path, str(error))
    else:
        # Whatever else failed, its text may quote the value: say only where.
        yield Problem(path, "is not a value this key takes")


def _unknown(error: ForbiddenExtraKeysError, path: str) -> Iterator[Problem]:
    known = [a.name for a in attrs.fields(error.cl)]
    for key in sorted(error.extra_fields):
        message = f"unknown key{hint(key, known)}; the keys here are {', '.join(known)}"
        yield Problem(_key(path, key), message)
