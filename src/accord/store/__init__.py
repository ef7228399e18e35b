"""Storage: one small protocol per concern (:mod:`accord.store.contract`), two backends.

- :mod:`accord.store.sqlite`: the default, a WAL database file in the data directory.
- :mod:`accord.store.postgres`: PostgreSQL through asyncpg (the ``[postgres]`` extra).

What is stored: the history of routed events and the latest event of every uid (it survives a
restart), data package metadata, video feeds, the sharing ledger and the federation outbox.
Package bytes live beside the database as content-addressed files (:mod:`accord.store.blobs`).
Schemas change only through numbered migrations (``migrations/<backend>/NNNN_name.sql``),
applied in order at open by :mod:`accord.store.migrate`.
"""
