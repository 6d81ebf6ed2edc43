"""The application layer: what runs the core against real files, clocks and servers.

- :mod:`~sourcetruth.app.bookfolder`: a book folder (policy, store, keys, the
  delivery log, audit records, the outbox), what the command works on;
- :mod:`~sourcetruth.app.databasebook`: a book kept whole in a PostgreSQL
  database, what ``--book postgresql://...`` works on;
- :mod:`~sourcetruth.app.settings`: ``policy.toml``, read and checked;
- :mod:`~sourcetruth.app.sending`: the sending loop, with retries and a
  delivery log that survives a crash;
- :mod:`~sourcetruth.app.dispatch`: a message sent from a folder of audit
  records, audited before it is handed over and resumed as first planned;
- :mod:`~sourcetruth.app.distributed`: many schools' nightly syncs as tasks;
- :mod:`~sourcetruth.app.demo`: the week of the scenarios, end to end.

The core (the modules directly in :mod:`sourcetruth`) imports nothing from
here; this layer may import the adapters.
"""

__all__: list[str] = []
