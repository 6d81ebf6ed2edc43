"""What a OneRoster CSV bundle is made of: its files and their columns, for reading and writing.

The columns are the spec's, in its order: 1.1's ``users.csv`` keeps the role
in a column, 1.2 moves it to ``roles.csv``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "ORGS",
    "ORG_COLUMNS",
    "ROLES",
    "ROLE_COLUMNS",
    "USERS",
    "USERS_11",
    "USERS_12",
]

MANIFEST: Final = "manifest.csv"
USERS: Final = "users.csv"
ROLES: Final = "roles.csv"
ORGS: Final = "orgs.csv"

MANIFEST_COLUMNS: Final = ("propertyName", "value")
USERS_11: Final = (
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
)
USERS_12: Final = (
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
    "userMasterIdentifier",
    "preferredGivenName",
    "preferredMiddleName",
    "preferredFamilyName",
    "primaryOrgSourcedId",
    "pronouns",
)
ROLE_COLUMNS: Final = (
    "sourcedId",
    "status",
    "dateLastModified",
    "userSourcedId",
    "roleType",
    "role",
    "beginDate",
    "endDate",
    "orgSourcedId",
    "userProfileSourcedId",
)
ORG_COLUMNS: Final = (
    "sourcedId",
    "status",
    "dateLastModified",
    "name",
    "type",
    "identifier",
    "parentSourcedId",
)
