"""The one contract every backend keeps; ``tests/store/test_contract.py`` checks each of them.

Every method is a coroutine and every write is one transaction: either all of it is durable
when the coroutine returns, or none of it. Backends translate their driver's errors into
:class:`StoreError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from accord.store.records import (
    ArchivedEvent,
    HistoryPage,
    HistoryQuery,
    HistoryStats,
    Package,
    PackageQuery,
    VideoFeed,
)


class StoreError(Exception):
    """The database failed or refused; the message says which and what to do."""


class Store(Protocol):
    name: str  # "sqlite" or "postgresql", for status output

    async def close(self) -> None: ...

    # -- history and latest state ----------------------------------------------------------------
    async def write_events(
        self, history: Sequence[ArchivedEvent], latest: Sequence[ArchivedEvent]
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

    async def latest(self, uid: str) -> ArchivedEvent | None:
        """The newest event stored for ``uid``."""
        ...

    async def latest_fresh(self, now_ms: int) -> list[ArchivedEvent]:
        """The newest event of every uid whose stale time is after ``now_ms``."""
        ...

    # -- data packages ---------------------------------------------------------------------------
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

    # -- video feeds -----------------------------------------------------------------------------
    async def put_video(self, feed: VideoFeed) -> None:
        """Add or replace the feed with this uid."""
        ...

    async def videos(self, visible_to: frozenset[str] | None) -> list[VideoFeed]: ...

    async def delete_video(self, uid: str) -> bool: ...
