"""Stores: where a book and its journal live between runs.

The protocol is :class:`sourcetruth.protocols.Store`; :mod:`~sourcetruth.adapters.stores.base`
holds :func:`~sourcetruth.adapters.stores.base.apply` (load, merge, commit).
Built in: ``sqlite`` (the default) and ``jsonstore`` (one JSON file, for
small books), each imported only when used.
"""

__all__: list[str] = []
