"""What a School Data Sync v2.1 export is made of: its files and their columns.

Shared by reading (:mod:`sourcetruth.adapters.sources.sds`) and writing
(:func:`~sourcetruth.adapters.sources.sds.write_files`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["COLUMNS", "ORGS", "RELATIONSHIPS", "REQUIRED", "ROLES", "USERS"]

ORGS: Final = "orgs.csv"
USERS: Final = "users.csv"
ROLES: Final = "roles.csv"
RELATIONSHIPS: Final = "relationships.csv"

# Every column of each file that the doc names, in the doc's order, and the
# ones this adapter requires (the doc's required ones, plus those that carry a
# covered field: see the docstring of sourcetruth.adapters.sources.sds).
COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    ORGS: ("sourcedId", "name", "type", "parentSourcedId"),
    USERS: (
        "sourcedId",
        "username",
        "givenName",
        "familyName",
        "password",
        "activeDirectoryMatchId",
        "email",
        "phone",
        "sms",
    ),
    ROLES: (
        "userSourcedId",
        "orgSourcedId",
        "role",
        "sessionSourcedId",
        "grade",
        "isPrimary",
        "roleStartDate",
        "roleEndDate",
    ),
    RELATIONSHIPS: ("userSourcedId", "relationshipUserSourcedId", "relationshipRole"),
}
REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    ORGS: ("sourcedId", "name", "type"),
    USERS: ("sourcedId", "username", "givenName", "familyName", "email", "phone", "sms"),
    ROLES: ("userSourcedId", "orgSourcedId", "role", "grade"),
    RELATIONSHIPS: ("userSourcedId", "relationshipUserSourcedId", "relationshipRole"),
}
