"""What the vCard reader and writer share: the library's own X- properties (package-private).

A card the library writes carries the fields vCard has no property for
(role, year and registration group, a guardian's children and how they are
related) as ``X-SOURCETRUTH-*`` properties, which its reader takes back.
"""

from __future__ import annotations

from typing import Final

ROLE: Final = "X-SOURCETRUTH-ROLE"
YEAR_GROUP: Final = "X-SOURCETRUTH-YEAR-GROUP"
REGISTRATION_GROUP: Final = "X-SOURCETRUTH-REGISTRATION-GROUP"
CHILD: Final = "X-SOURCETRUTH-CHILD"
PREFIX: Final = "X-SOURCETRUTH-"
PRIORITY: Final = "X-SOURCETRUTH-PRIORITY"
RESPONSIBILITY: Final = "X-SOURCETRUTH-PARENTAL-RESPONSIBILITY"
MESSAGES: Final = "X-SOURCETRUTH-RECEIVES-MESSAGES"
