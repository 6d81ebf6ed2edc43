"""Values typed on the command line go through the checks imported values go through.

A phone number must be valid in its source's region, an email address of
valid syntax (:mod:`sourcetruth.normalise`): a value the book could never
use is refused before it is saved, naming the option, never echoing the
value (an error line holds no personal value, as everywhere in the command).
"""

from __future__ import annotations

from collections.abc import Sequence

from sourcetruth.exceptions import UsageError
from sourcetruth.normalise import normalise_email, normalise_phone

__all__ = ["check_typed"]

_ORDINALS = ("first", "second", "third")


def check_typed(option: str, field: str, values: Sequence[str], region: str) -> None:
    """Refuse the first of *values* (of *field*: phones or emails) that does not normalise.

    *option* names where the values were typed (``--mobile``; ``phones`` for
    ``override set``): with several, the refused one is counted, not shown.
    """
    if field not in {"phones", "emails"}:
        return
    for n, value in enumerate(values):
        found = normalise_phone(value, region) if field == "phones" else normalise_email(value)
        if not found.ok:
            which = ""
            if len(values) > 1:
                which = f", {_ORDINALS[n]} value" if n < len(_ORDINALS) else f", value {n + 1}"
            read = f" (numbers are read in region {region})" if field == "phones" else ""
            msg = f"{option}{which}: {found.problem}{read}; nothing was changed"
            raise UsageError(msg)
