"""``accord mission list|show|create|delete|export``: the missions, straight from the store.

As ``accord history``, it reads the database itself, as the operator (every group). ``list``,
``show`` and ``export`` only read (a missing data directory is an error, nothing is made).
``create`` and ``delete`` write the store the same way the Mission API does (state and change
log in one transaction); a server already running sees them after its next start, since it
keeps the missions in memory — use the API (``PUT|DELETE /Marti/api/missions/{name}``) then.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
import uuid
from typing import Any

from accord.cli import datadir
from accord.config import Config
from accord.missions import model, shape
from accord.missions.codec import decode_change, decode_mission, encode_change, encode_mission
from accord.missions.model import MissionError
from accord.store.contract import Store, StoreError
from accord.store.opening import open_store
from accord.store.records import MissionChangeRow, MissionRow


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("mission", help="list, show, create, delete, export missions")
    verbs = p.add_subparsers(dest="mission_verb", required=True)

    def verb(name: str, text: str) -> argparse.ArgumentParser:
        v = verbs.add_parser(name, parents=[common], help=text)
        v.add_argument("--database-url", help="postgresql://… (default: SQLite in the data dir)")
        return v

    verb("list", "every mission: name, groups, contents, subscribers")
    verb("show", "one mission as the Mission API shows it (JSON)").add_argument("name")
    create = verb("create", "a new mission")
    create.add_argument("name")
    create.add_argument("--group", action="append", required=True, help="a group (repeat)")
    create.add_argument("--description", default="")
    create.add_argument("--tool", default="public")
    verb("delete", "remove a mission and its change log").add_argument("name")
    verb("export", "a mission with its changes and logs (JSON)").add_argument("name")


def run(args: argparse.Namespace, config: Config) -> int:
    # Every verb needs the database a server made: none makes a data directory (or a
    # database) where a mistyped --data-dir points.
    db = datadir.sqlite_file(args.database_url or config.database_url, config.data_dir)
    if db is not None and not db.exists():
        print(
            f"accord: error: no database {db}: no server has run on {config.data_dir} yet; "
            "give the --data-dir (or --config) the server runs with",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_run(args, config))


async def _run(args: argparse.Namespace, config: Config) -> int:
    try:
        store = await open_store(args.database_url or config.database_url, config.data_dir)
    except StoreError as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return 2
    try:
        return await VERBS[args.mission_verb](store, args)
    except (StoreError, MissionError) as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()


async def _find(store: Store, name: str) -> model.Mission:
    for row in await store.missions():
        if row.name == name:
            contents = await store.mission_contents(row.guid)
            return decode_mission(row.doc, [(c.key, c.doc) for c in contents])
    raise MissionError(f"no mission {name!r} (accord mission list shows them)")


async def _list(store: Store, args: argparse.Namespace) -> int:
    rows = await store.missions()
    for row in rows:
        contents = await store.mission_contents(row.guid)
        m = decode_mission(row.doc, [(c.key, c.doc) for c in contents])
        subs = sum(1 for s in m.subscriptions.values() if s.live)
        print(
            f"{m.name}\t{','.join(sorted(m.groups))}\t{len(m.items)} items\t"
            f"{len(m.resources)} files\t{len(m.logs)} logs\t{subs} subscribers\t{m.guid}"
        )
    print(f"{len(rows)} missions", file=sys.stderr)
    return 0


def _dump(body: Any) -> None:
    json.dump(body, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


async def _show(store: Store, args: argparse.Namespace) -> int:
    _dump(shape.mission_json(await _find(store, args.name)))
    return 0


async def _export(store: Store, args: argparse.Namespace) -> int:
    mission = await _find(store, args.name)
    changes = [decode_change(r.doc) for r in await store.mission_changes(mission.guid)]
    _dump(shape.mission_json(mission, changes=changes, logs=True))
    return 0


async def _create(store: Store, args: argparse.Namespace) -> int:
    now_ms = int(time.time() * 1000)
    mission, change = model.create(
        args.name,
        str(uuid.uuid4()),
        frozenset(args.group),
        "",
        now_ms,
        description=args.description,
        tool=args.tool,
    )
    mission = dataclasses.replace(mission, change_count=1)
    row = MissionChangeRow(mission.guid, 1, now_ms, encode_change(change))
    if not await store.create_mission(
        MissionRow(mission.guid, mission.name, encode_mission(mission)), [row]
    ):
        raise MissionError(f"the mission name {args.name!r} is taken")
    print(f"created mission {mission.name!r} ({mission.guid}) in {', '.join(args.group)}")
    return 0


async def _delete(store: Store, args: argparse.Namespace) -> int:
    mission = await _find(store, args.name)
    await store.delete_mission(mission.guid)
    print(f"deleted mission {mission.name!r}")
    return 0


VERBS = {"list": _list, "show": _show, "create": _create, "delete": _delete, "export": _export}
