"""What the MIS export adapters (OneRoster, School Data Sync) share: their options."""

from __future__ import annotations

import os
from pathlib import Path

from sourcetruth.exceptions import UsageError
from sourcetruth.model import SourceKind, check_source_name

__all__ = ["MisExportAdapter"]


class MisExportAdapter:
    """The options of an adapter that reads a folder (or archive) of MIS export files.

    *source* is the source's name in the policy; *org* keeps only the users of
    that org (and the guardians of its pupils); *allow_cp1252* lets a file
    without a byte-order mark be cp1252 when it is not UTF-8;
    *max_reject_fraction* is the share of a file's rows that may be rejected
    before the whole read is refused (rejected rows make the reading a delta).
    A subclass adds ``covers``, ``supports_delta`` and ``read``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        source: str = "mis",
        org: str | None = None,
        allow_cp1252: bool = False,
        max_reject_fraction: float = 0.0,
    ) -> None:
        check_source_name(source)
        if not 0.0 <= max_reject_fraction <= 1.0:
            msg = "max_reject_fraction is a fraction of rows, from 0 to 1"
            raise UsageError(msg)
        if org is not None and not org.strip():
            msg = "org, when given, must be an org's sourcedId, not blank"
            raise UsageError(msg)
        self._path = Path(path)
        self._source = source
        self._org = None if org is None else org.strip()
        self._allow_cp1252 = allow_cp1252
        self._max_reject_fraction = max_reject_fraction

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={os.fspath(self._path)!r}, source={self._source!r})"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def source(self) -> str:
        """The source's name in the policy."""
        return self._source

    @property
    def kind(self) -> SourceKind:
        """An MIS export is an MIS feed."""
        return SourceKind.MIS

    @property
    def org(self) -> str | None:
        return self._org

    @property
    def allow_cp1252(self) -> bool:
        return self._allow_cp1252

    @property
    def max_reject_fraction(self) -> float:
        return self._max_reject_fraction
