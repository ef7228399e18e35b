"""What the store keeps, as one small protocol per concern; every backend (SQLite,
PostgreSQL) implements all of them, and ``tests/store/test_contract.py`` checks each backend.

A consumer depends on the protocol it uses (the history writer on :class:`HistoryStore`, the
package API on :class:`PackageStore`, ...); :class:`Store`, all of them together, is for the
composition root that opens one. Every method is a coroutine and every write is one
transaction: either all of it is durable when the coroutine returns, or none of it. Backends
translate their driver's errors into :class:`StoreError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from accord.store.records import (
    LEDGER_PAGE,
    OUTBOX_PAGE,
    HistoryPage,
    HistoryQuery,
    HistoryStats,
    LedgerCheckpoint,
    LedgerCosignature,
    LedgerEntry,
    LedgerReceipt,
    MissionChangeRow,
    MissionContentRow,
    MissionRow,
    OutboxRow,
    Package,
    PackageQuery,
    StoredEvent,
    VideoFeed,
)


class StoreError(Exception):
    """The database failed or refused; the message says which and what to do."""


class Backend(Protocol):
    name: str  # "sqlite" or "postgresql", for status output

    async def close(self) -> None: ...


class HistoryStore(Protocol):
    """The history of routed events, and the newest event of each uid."""

    async def write_events(
        self, history: Sequence[StoredEvent], latest: Sequence[StoredEvent]
    ) -> None:
        """Append ``history`` and make each of ``latest`` the newest event of its uid (an
        older event never replaces a newer one), in one transaction."""
        ...

    async def history(self, query: HistoryQuery) -> HistoryPage:
        """Archived events matching ``query``, oldest first, one page."""
        ...

    async def history_stats(self) -> HistoryStats: ...

    async def prune_history(self, older_than_ms: int, keep_newest: int) -> int:
        """Delete events older than ``older_than_ms`` and all but the ``keep_newest`` newest;
        return how many went."""
        ...

    async def latest(self, uid: str) -> StoredEvent | None:
        """The newest event stored for ``uid``."""
        ...

    async def latest_fresh(self, now_ms: int) -> list[StoredEvent]:
        """The newest event of every uid whose stale time is after ``now_ms``."""
        ...


class PackageStore(Protocol):
    """Data packages' metadata (their bytes are in :mod:`accord.store.blobs`)."""

    async def add_package(self, package: Package) -> Package:
        """Record a package. The same hash again keeps the first metadata and adds the new
        groups (the same bytes shared in another group); returns what is now stored."""
        ...

    async def package(self, hash: str) -> Package | None: ...

    async def packages(self, query: PackageQuery) -> list[Package]:
        """Matching packages, newest first."""
        ...

    async def update_package(
        self, hash: str, *, tool: str | None = None, mimetype: str | None = None
    ) -> bool:
        """Change a package's tool or MIME type; False when there is no such package."""
        ...

    async def delete_package(self, hash: str) -> bool: ...


class VideoStore(Protocol):
    """Video feeds the Marti API lists."""

    async def put_video(self, feed: VideoFeed) -> None:
        """Add or replace the feed with this uid."""
        ...

    async def videos(self, visible_to: frozenset[str] | None) -> list[VideoFeed]: ...

    async def delete_video(self, uid: str) -> bool: ...


class LedgerStore(Protocol):
    """The sharing ledger: append-only entries per (partner, direction) log, its checkpoints,
    cosignatures and receipts (:mod:`accord.ledger` checks what comes back)."""

    async def ledger_append(self, entries: Sequence[LedgerEntry]) -> None:
        """Add ``entries`` in one transaction. An index already stored for its log is a
        :class:`StoreError` and nothing is written."""
        ...

    async def ledger_entries(
        self, partner: str, direction: str, start: int = 0, limit: int = LEDGER_PAGE
    ) -> list[LedgerEntry]:
        """Up to ``limit`` entries of one log from index ``start`` on, in index order."""
        ...

    async def ledger_size(self, partner: str, direction: str) -> int:
        """One past the highest index stored (0 for no entries)."""
        ...

    async def ledger_logs(self) -> list[tuple[str, str]]:
        """Every (partner, direction) with entries or checkpoints, sorted."""
        ...

    async def add_ledger_checkpoint(self, checkpoint: LedgerCheckpoint) -> bool:
        """Keep a checkpoint; False (and the first one kept) when one of that size exists."""
        ...

    async def ledger_checkpoints(self, partner: str, direction: str) -> list[LedgerCheckpoint]:
        """Oldest (smallest) first."""
        ...

    async def add_ledger_cosignature(self, cosignature: LedgerCosignature) -> None: ...

    async def ledger_cosignatures(self, partner: str, direction: str) -> list[LedgerCosignature]:
        """By checkpoint size."""
        ...

    async def add_ledger_receipt(self, receipt: LedgerReceipt) -> bool:
        """Keep a receipt; False (and the first one kept) when the entry has one."""
        ...

    async def ledger_receipts(self, partner: str, direction: str) -> list[LedgerReceipt]:
        """By entry index."""
        ...

    async def ledger_receipted(self, partner: str, direction: str) -> int:
        """One past the highest entry index a receipt is kept under (0 when none): where the
        partner's receipts are still wanted, without reading every note."""
        ...


class OutboxStore(Protocol):
    """Federation store and forward: what waits for a partner, and each link's marks."""

    async def outbox_append(self, rows: Sequence[OutboxRow]) -> None:
        """Add ``rows`` in one transaction; a (partner, seq) already stored is a
        :class:`StoreError` and nothing is written."""
        ...

    async def outbox_read(
        self, partner: str, after: int = 0, limit: int = OUTBOX_PAGE
    ) -> list[OutboxRow]:
        """Up to ``limit`` rows of ``partner`` with a sequence number above ``after``, in order."""
        ...

    async def outbox_delete(self, partner: str, through: int) -> int:
        """Remove the rows of ``partner`` up to and including ``through``; how many went."""
        ...

    async def outbox_count(self, partner: str) -> int: ...

    async def link_mark(self, partner: str, kind: str) -> int:
        """The mark ``kind`` ("sent" or "received") of a link; 0 if never set."""
        ...

    async def set_link_mark(self, partner: str, kind: str, seq: int) -> None:
        """Raise the mark to ``seq`` (a lower value leaves it as it is)."""
        ...


class MissionStore(Protocol):
    """Missions (Data Sync): each mission's state and its append-only change log. A mission's
    state and the changes that made it are written in one transaction."""

    async def missions(self) -> list[MissionRow]:
        """Every mission, by name."""
        ...

    async def create_mission(self, row: MissionRow, changes: Sequence[MissionChangeRow]) -> bool:
        """Add a mission and its first changes; False (nothing written) when its name or guid
        is taken."""
        ...

    async def update_mission(
        self,
        row: MissionRow,
        changes: Sequence[MissionChangeRow],
        put: Sequence[MissionContentRow] = (),
        drop: Sequence[str] = (),
    ) -> bool:
        """Replace the state of the mission ``row.guid``, add or replace the contents ``put``,
        remove those keyed ``drop`` and append ``changes``; False (nothing written) when there
        is no such mission. A (guid, seq) already stored is a :class:`StoreError` and nothing
        is written."""
        ...

    async def mission_contents(self, guid: str) -> list[MissionContentRow]:
        """The mission's items and files, by key."""
        ...

    async def delete_mission(self, guid: str) -> bool:
        """Remove a mission and its change log; False when there was none."""
        ...

    async def mission_changes(self, guid: str, after: int = 0) -> list[MissionChangeRow]:
        """The mission's changes with a sequence number above ``after``, in order."""
        ...


class Store(
    Backend,
    HistoryStore,
    PackageStore,
    VideoStore,
    LedgerStore,
    OutboxStore,
    MissionStore,
    Protocol,
):
    """Every concern of one backend: what the composition root opens and hands out."""
