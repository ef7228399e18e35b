"""Storage: one :class:`~accord.store.contract.Store` contract, two backends.

- :mod:`accord.store.sqlite`: the default, a WAL database file in the data directory.
- :mod:`accord.store.postgres`: PostgreSQL through asyncpg (the ``[postgres]`` extra).

What is stored: the history of routed events, the latest event of every uid (it survives a
restart), data package metadata and video feeds. Package bytes live beside the database as
content-addressed files (:mod:`accord.store.blobs`). Schemas change only through numbered
migrations (``migrations/<backend>/NNNN_name.sql``), applied in order at open.
"""
