"""``accord history``: query the history from the terminal, straight from the store.

It reads the database itself (SQLite allows it while the server runs), as the operator: every
group is visible. ``--all`` follows the pages to the end, writing as it goes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

from accord.cli import datadir
from accord.config import Config
from accord.store.contract import StoreError
from accord.store.export import WRITERS
from accord.store.opening import open_store
from accord.store.query import QueryError, parse_history_query
from accord.store.records import MAX_PAGE, HistoryQuery


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "history",
        parents=[common],
        help="query the history of routed events",
        description="Times: ISO 8601 (2026-11-29T10:00:00Z), epoch ms, or an age (15m, 2h, 7d).",
    )
    p.add_argument("--uid", help="events of this uid")
    p.add_argument("--type", help="event type prefix, e.g. a-f-G or b-m-p")
    p.add_argument("--since", help="events at or after this time")
    p.add_argument("--until", help="events before this time")
    p.add_argument("--bbox", help="south,west,north,east in degrees")
    p.add_argument("--limit", type=int, default=100, help="events per page (max 1000)")
    p.add_argument("--all", action="store_true", help="every matching event, not one page")
    p.add_argument(
        "--format", choices=sorted(WRITERS), default="jsonl", help="output format (jsonl)"
    )
    p.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    p.add_argument("--database-url", help="postgresql://… (default: SQLite in the data dir)")


def run(args: argparse.Namespace, config: Config) -> int:
    params = {
        key: str(value)
        for key, value in (
            ("uid", args.uid),
            ("type", args.type),
            ("since", args.since),
            ("until", args.until),
            ("bbox", args.bbox),
            ("limit", min(args.limit, MAX_PAGE) if args.all else args.limit),
        )
        if value is not None
    }
    try:
        query = parse_history_query(params, int(time.time() * 1000), None)
    except QueryError as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return 2
    try:
        datadir.check(args, config)  # read-only: a mistyped --data-dir is not an empty history
    except datadir.DataDirError as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return 2
    if args.output is not None:
        with args.output.open("w", encoding="utf-8") as out:
            return asyncio.run(_export(config, query, args.format, args.all, out))
    return asyncio.run(_export(config, query, args.format, args.all, sys.stdout))


async def _export(
    config: Config, query: HistoryQuery, fmt: str, everything: bool, out: TextIO
) -> int:
    try:
        store = await open_store(config.database_url, config.data_dir)
    except StoreError as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return 2
    writer = WRITERS[fmt]
    count = 0
    try:
        out.write(writer.head)
        while True:
            page = await store.history(query)
            for event in page.events:
                out.write(writer.item(event, count == 0))
                count += 1
            if page.next is None or not everything:
                break
            query = HistoryQuery(
                uid=query.uid,
                type_prefix=query.type_prefix,
                since_ms=query.since_ms,
                until_ms=query.until_ms,
                bbox=query.bbox,
                after=page.next,
                limit=query.limit,
            )
        out.write(writer.tail)
    except StoreError as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    more = "" if everything or page.next is None else "; more with --all or --limit"
    print(f"{count} events{more}", file=sys.stderr)
    return 0
