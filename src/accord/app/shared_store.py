"""What nodes of one organisation share through its PostgreSQL database (issue 17).

Nodes of a cluster (``[cluster]``) whose ``database_url`` names PostgreSQL share that one
database: every node reads and writes the same packages, missions, history, ledger and outbox
tables. A SQLite file is never shared (each node has its own). Sharing changes three things:
data package bytes are kept in the database too (so any node serves any package), events that
came from the bus are not written to the history again (the node that received them from its
client wrote them), and missions edited on one node are re-read by the others (see
``accord.cluster.missions_sync``).
"""

from __future__ import annotations

from accord.config import Config
from accord.store.blobs import SharedBlobs
from accord.store.contract import Store


def store_is_shared(config: Config, store: Store) -> bool:
    """Whether the organisation's other nodes use this same database."""
    return config.cluster.enabled and store.name == "postgresql"


def shared_blobs(config: Config, store: Store) -> SharedBlobs | None:
    """Where every node of the organisation reads package bytes; None when not shared."""
    if not store_is_shared(config, store):
        return None
    from accord.store.postgres import PostgresStore

    return store if isinstance(store, PostgresStore) else None
