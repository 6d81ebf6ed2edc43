"""A record's digest: a short, stable name for the data of its current version (package-private).

A store keeps it beside each record, so that a full snapshot can be compared
with what the book holds by digest first, building objects only for the
records whose digest differs. The digest is the SHA-256 of the data's
canonical JSON (the book's own converter, keys and sets sorted), so it is the
same in every run, on every machine, whatever ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
import json

from sourcetruth.model import ContactData
from sourcetruth.serialise import converter

__all__ = ["record_digest"]


def record_digest(data: ContactData | None) -> str:
    """The digest of a record version's *data* (None: the record is departed)."""
    text = json.dumps(
        converter.unstructure(data), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
