"""PostgreSQL through asyncpg (the ``[postgres]`` extra): for a history bigger than one file
wants, or several servers sharing one database.

A pool of connections; every write is one transaction. Migrations run at open under an
advisory lock, so two servers starting at once do not both migrate. Text is compared in code
point order (``COLLATE "C"`` in the schema) so pages and prefixes come out as in SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from accord.store.contract import StoreError
from accord.store.migrate import pending
from accord.store.postgres_base import _count
from accord.store.postgres_blobs import PostgresBlobs
from accord.store.postgres_federation import PostgresFederation
from accord.store.postgres_missions import PostgresMissions
from accord.store.records import (
    Cursor,
    HistoryPage,
    HistoryQuery,
    HistoryStats,
    Package,
    PackageQuery,
    StoredEvent,
    VideoFeed,
    event_from_row,
    event_row,
    package_from_row,
    package_row,
)

CONNECT_TIMEOUT_S = 10.0  # per connection attempt; asyncpg's own default is 60 s
POOL_MAX = 10  # connections; writes are batched, so a few suffice (precedent: asyncpg's 10)
_MIGRATION_LOCK = 0x6163636F7264  # "accord": pg_advisory_xact_lock key held while migrating
_PRUNE_CHUNK = 10_000  # rows per delete statement: keeps each write transaction short

_EVENT_COLUMNS = (
    "uid",
    "type",
    "how",
    "time_ms",
    "start_ms",
    "stale_ms",
    "lat",
    "lon",
    "hae",
    "callsign",
    "groups",
    "payload_format",
    "payload",
)
_EVENT_SELECT = ", ".join(_EVENT_COLUMNS)
_UPSERT_LATEST = (
    f"INSERT INTO latest AS l ({_EVENT_SELECT}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_EVENT_COLUMNS) + 1))}) "
    "ON CONFLICT (uid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _EVENT_COLUMNS[1:])
    + " WHERE excluded.time_ms >= l.time_ms"
)
_PACKAGE_COLUMNS = (
    "hash, name, size, mimetype, keywords, tool, groups, creator_uid, submitter, submitted_ms, "
    "lat, lon, expiration_ms"
)


class PostgresStore(PostgresFederation, PostgresMissions, PostgresBlobs):
    name = "postgresql"

    @classmethod
    async def open(cls, url: str) -> PostgresStore:
        """Connect to the database at ``url`` (``postgresql://user:pw@host:port/db``) and
        bring its schema up to date."""
        where = redact(url)
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=POOL_MAX,
                timeout=CONNECT_TIMEOUT_S,
                reset=_keep_session,
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError) as exc:
            raise StoreError(_connect_problem(where, exc)) from exc
        store = cls(pool, where)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self._transaction() as conn:
            try:
                # Held until commit: a second server waits here, then finds nothing to do.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(number integer PRIMARY KEY, name text NOT NULL)"
                )
                rows = await conn.fetch("SELECT number FROM schema_migrations")
                for migration in pending("postgres", {row[0] for row in rows}):
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2)",
                        migration.number,
                        migration.name,
                    )
            except asyncpg.InsufficientPrivilegeError as exc:
                raise StoreError(
                    f"PostgreSQL at {self.where}: this user may not create Accord's tables "
                    f"({exc}); connect as the database's owner, or let its owner run "
                    "grant this user CREATE on schema public"
                ) from exc

    # -- history and latest ----------------------------------------------------------------------
    async def write_events(
        self, history: Sequence[StoredEvent], latest: Sequence[StoredEvent]
    ) -> None:
        # One INSERT … ON CONFLICT may not touch a row twice: keep each uid's newest (the last
        # of equal times, as applying them one by one would).
        newest: dict[str, StoredEvent] = {}
        for event in latest:
            kept = newest.get(event.uid)
            if kept is None or event.time_ms >= kept.time_ms:
                newest[event.uid] = event
        if not history and not newest:
            return
        async with self._transaction() as conn:
            if history:
                await conn.copy_records_to_table(
                    "history", records=[_event_row(e) for e in history], columns=_EVENT_COLUMNS
                )
            if newest:
                await conn.executemany(_UPSERT_LATEST, [_event_row(e) for e in newest.values()])

    async def history(self, query: HistoryQuery) -> HistoryPage:
        if query.visible_to is not None and not query.visible_to:
            return HistoryPage([], None)
        sql, args = _history_sql(query)
        async with self._connection() as conn:
            rows = await conn.fetch(sql, *args)
        events = [_event(row) for row in rows]
        if len(events) > query.limit:
            events = events[: query.limit]
            return HistoryPage(events, Cursor(events[-1].time_ms, events[-1].id))
        return HistoryPage(events, None)

    async def history_stats(self) -> HistoryStats:
        async with self._connection() as conn:
            row = await conn.fetchrow("SELECT count(*), min(time_ms), max(time_ms) FROM history")
        assert row is not None
        return HistoryStats(row[0], row[1], row[2])

    async def prune_history(self, older_than_ms: int, keep_newest: int) -> int:
        async with self._connection() as conn:
            # Ids come from one sequence (gaps only where a batch rolled back), so the newest
            # N are those above max(id) - N: no OFFSET walk over millions of rows.
            newest = await conn.fetchval("SELECT max(id) FROM history")
        cut = (newest or 0) - keep_newest
        total = 0
        while True:
            async with self._transaction() as conn:
                status = await conn.execute(
                    "DELETE FROM history WHERE id IN (SELECT id FROM history "
                    "WHERE time_ms < $1 OR id <= $2 LIMIT $3)",
                    older_than_ms,
                    cut,
                    _PRUNE_CHUNK,
                )
            removed = _count(status)
            total += removed
            if removed < _PRUNE_CHUNK:
                return total

    async def latest(self, uid: str) -> StoredEvent | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(f"SELECT 0, {_EVENT_SELECT} FROM latest WHERE uid = $1", uid)
        return _event(row) if row is not None else None

    async def latest_fresh(self, now_ms: int) -> list[StoredEvent]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT 0, {_EVENT_SELECT} FROM latest WHERE stale_ms > $1 ORDER BY time_ms, uid",
                now_ms,
            )
        return [_event(row) for row in rows]

    # -- packages --------------------------------------------------------------------------------
    async def add_package(self, package: Package) -> Package:
        async with self._transaction() as conn:
            inserted = await conn.fetchval(
                f"INSERT INTO packages ({_PACKAGE_COLUMNS}) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) "
                "ON CONFLICT (hash) DO NOTHING RETURNING true",
                *_package_row(package),
            )
            if inserted:
                return package
            # Already there (perhaps inserted a moment ago by another server): join the groups.
            row = await conn.fetchrow(
                f"SELECT {_PACKAGE_COLUMNS} FROM packages WHERE hash = $1 FOR UPDATE",
                package.hash,
            )
            assert row is not None
            stored = _package(row)
            groups = tuple(sorted(set(stored.groups) | set(package.groups)))
            await conn.execute(
                "UPDATE packages SET groups = $1 WHERE hash = $2", list(groups), package.hash
            )
            return replace(stored, groups=groups)

    async def package(self, hash: str) -> Package | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_PACKAGE_COLUMNS} FROM packages WHERE hash = $1", hash
            )
        return _package(row) if row is not None else None

    async def packages(self, query: PackageQuery) -> list[Package]:
        if query.visible_to is not None and not query.visible_to:
            return []
        where: list[str] = []
        args = _Args()
        for column, value in (
            ("name", query.name),
            ("tool", query.tool),
            ("mimetype", query.mimetype),
            ("creator_uid", query.creator_uid),
        ):
            if value is not None:
                where.append(f"{column} = {args.add(value)}")
        if query.keyword is not None:
            where.append(f"{args.add(query.keyword)} = ANY (keywords)")
        if query.since_ms is not None:
            where.append(f"submitted_ms >= {args.add(query.since_ms)}")
        if query.until_ms is not None:
            where.append(f"submitted_ms < {args.add(query.until_ms)}")
        if query.visible_to is not None:
            where.append(f"groups && {args.add(sorted(query.visible_to))}::text[]")
        sql = f"SELECT {_PACKAGE_COLUMNS} FROM packages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY submitted_ms DESC, hash"
        async with self._connection() as conn:
            rows = await conn.fetch(sql, *args.values)
        return [_package(row) for row in rows]

    async def update_package(
        self, hash: str, *, tool: str | None = None, mimetype: str | None = None
    ) -> bool:
        async with self._transaction() as conn:
            status = await conn.execute(
                "UPDATE packages SET tool = coalesce($1, tool), "
                "mimetype = coalesce($2, mimetype) WHERE hash = $3",
                tool,
                mimetype,
                hash,
            )
        return _count(status) > 0

    async def delete_package(self, hash: str) -> bool:
        async with self._transaction() as conn:
            status = await conn.execute("DELETE FROM packages WHERE hash = $1", hash)
        return _count(status) > 0

    # -- video -----------------------------------------------------------------------------------
    async def put_video(self, feed: VideoFeed) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO videos (uid, alias, url, groups, fields, active) "
                "VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (uid) DO UPDATE SET "
                "alias = excluded.alias, url = excluded.url, groups = excluded.groups, "
                "fields = excluded.fields, active = excluded.active",
                feed.uid,
                feed.alias,
                feed.url,
                sorted(feed.groups),
                json.dumps(feed.fields, sort_keys=True),
                feed.active,
            )

    async def videos(self, visible_to: frozenset[str] | None) -> list[VideoFeed]:
        if visible_to is not None and not visible_to:
            return []
        sql = "SELECT uid, alias, url, groups, fields, active FROM videos"
        args: list[Any] = []
        if visible_to is not None:
            sql += " WHERE groups && $1::text[]"
            args.append(sorted(visible_to))
        async with self._connection() as conn:
            rows = await conn.fetch(sql + " ORDER BY alias, uid", *args)
        return [
            VideoFeed(uid, alias, url, tuple(groups), json.loads(fields), active)
            for uid, alias, url, groups, fields, active in rows
        ]

    async def delete_video(self, uid: str) -> bool:
        async with self._transaction() as conn:
            status = await conn.execute("DELETE FROM videos WHERE uid = $1", uid)
        return _count(status) > 0


class _Args:
    """Query arguments, numbered as PostgreSQL wants them ($1, $2, …)."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _history_sql(query: HistoryQuery) -> tuple[str, list[Any]]:
    where: list[str] = []
    args = _Args()
    if query.bbox is not None:
        south, north = args.add(float(query.bbox.south)), args.add(float(query.bbox.north))
        index_parts, exact_parts = [], []
        for west_deg, east_deg in query.bbox.lon_ranges():
            west, east = args.add(float(west_deg)), args.add(float(east_deg))
            # The GiST index narrows by place (and time, below); the columns settle it exactly
            # (geometric operators compare with a 1e-6 tolerance).
            index_parts.append(
                f"point(lon, lat) <@ box(point({west}, {south}), point({east}, {north}))"
            )
            exact_parts.append(f"lon BETWEEN {west} AND {east}")
        where.append("(" + " OR ".join(index_parts) + ")")
        where.append(f"lat BETWEEN {south} AND {north}")
        where.append("(" + " OR ".join(exact_parts) + ")")
    if query.uid is not None:
        where.append(f"uid = {args.add(query.uid)}")
    if query.type_prefix:
        # A range, not LIKE: it uses the index and treats % and _ as the characters they are.
        low, high = args.add(query.type_prefix), args.add(query.type_prefix + "\U0010ffff")
        where.append(f"type >= {low} AND type < {high}")
    if query.since_ms is not None:
        where.append(f"time_ms >= {args.add(query.since_ms)}")
    if query.until_ms is not None:
        where.append(f"time_ms < {args.add(query.until_ms)}")
    if query.after is not None:
        where.append(
            f"(time_ms, id) > ({args.add(query.after.time_ms)}, {args.add(query.after.id)})"
        )
    if query.visible_to is not None:
        where.append(f"groups && {args.add(sorted(query.visible_to))}::text[]")
    sql = f"SELECT id, {_EVENT_SELECT} FROM history"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY time_ms, id LIMIT {args.add(query.limit + 1)}"
    return sql, args.values


def _event_row(e: StoredEvent) -> tuple[Any, ...]:
    return event_row(e, sorted(e.groups))


def _event(row: asyncpg.Record) -> StoredEvent:
    return event_from_row(tuple(row), tuple(row[11]))


def _package_row(p: Package) -> tuple[Any, ...]:
    return package_row(p, list(p.keywords), sorted(p.groups))


def _package(row: asyncpg.Record) -> Package:
    return package_from_row(tuple(row), tuple(row[4]), tuple(row[6]))


def redact(url: str) -> str:
    """``url`` without its password, fit for a message or a log."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hosts = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}{':***' if colon else ''}@{hosts}"
        query = urlencode(
            [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*"
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "(a postgresql:// URL that does not parse)"


def _connect_problem(where: str, exc: BaseException) -> str:
    """What went wrong opening the database, and what to do about it."""
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return (
            f"PostgreSQL at {where} refused the login ({exc}); check the user and password "
            "in --database-url, and the server's pg_hba.conf"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return (
            f"PostgreSQL at {where}: {exc}; create it (createdb, or CREATE DATABASE) or fix "
            "the database name in --database-url"
        )
    if isinstance(exc, asyncpg.PostgresError):
        return f"PostgreSQL at {where} refused the connection: {exc}"
    if isinstance(exc, ValueError):
        return (
            f"database_url {where} is not a usable PostgreSQL URL ({exc}); "
            "write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    return (
        f"cannot connect to PostgreSQL at {where} ({str(exc) or type(exc).__name__}); check that "
        "the server is running and accepts connections there, or fix --database-url"
    )


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """What a connection needs when it goes back to the pool: nothing. asyncpg has already
    rolled back any transaction left open, and the store sets no session state (no SET, LISTEN
    or session-level lock), so asyncpg's reset query would only cost a round trip per call."""
