"""Sources: readers of the files an MIS, an import or an address book delivers.

The protocols (:class:`~sourcetruth.adapters.sources.base.SourceAdapter`,
:class:`~sourcetruth.adapters.sources.base.AddressBookAdapter`) and what a
read returns are in :mod:`~sourcetruth.adapters.sources.base`; each built-in
format is its own module, imported only when used: ``oneroster``, ``sds``,
``tabular`` (generic CSV/TXT imports), ``vcard`` and ``export`` (the CSV the
book writes). ``text`` is the strict text reading they share; ``markup`` the
XML reading an adapter of a format that is not a table builds on (record
elements with their lines, no DTDs, declared encodings, rejections counted
across files).
"""

__all__: list[str] = []
