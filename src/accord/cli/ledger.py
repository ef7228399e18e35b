"""``accord ledger show|verify|export``: the sharing ledger, straight from the store.

``verify`` replays every log (or one partner's) from the database, or from an export file with
``--file``, and names the first inconsistency (exit 1). Our public key comes from
``<data_dir>/pki/ledger.key``; a partner's from ``--partner-key`` or
``<data_dir>/pki/partners/<partner>.vkey`` (without one, cosignatures and receipts are reported
as unchecked).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from accord.config import Config
from accord.identity.ca import PkiError
from accord.identity.ledger_key import ledger_verifier, partner_verifier, read_verifier
from accord.ledger.entry import EntryError, decode_entry
from accord.ledger.log import origin_for
from accord.ledger.note import Verifier
from accord.ledger.verify import (
    Inconsistency,
    LogVerifier,
    StoredCheckpoint,
    StoredCosignature,
    Summary,
)
from accord.store.contract import LedgerStore, StoreError
from accord.store.opening import open_store

EXIT_INCONSISTENT = 1
EXIT_USAGE = 2


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser("ledger", help="show, verify or export the sharing ledger")
    actions = p.add_subparsers(dest="ledger_command", required=True)
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--database-url", help="postgresql://… (default: SQLite in the data dir)")
    db.add_argument("--partner", help="only this partner's logs")
    show = actions.add_parser("show", parents=[common, db], help="logs and their last entries")
    show.add_argument("--direction", choices=["out", "in"], help="released (out) or mirror (in)")
    show.add_argument("--last", type=int, default=10, help="entries per log (default 10)")
    verify = actions.add_parser("verify", parents=[common, db], help="replay and check the logs")
    verify.add_argument("--file", type=Path, help="verify this export instead of the store")
    verify.add_argument("--key", help="our ledger public key (vkey string or file)")
    verify.add_argument("--partner-key", help="the partner's public key (vkey string or file)")
    export = actions.add_parser("export", parents=[common, db], help="JSON lines, verifiable")
    export.add_argument("--out", type=Path, required=True, help="file to write")


def run(args: argparse.Namespace, config: Config) -> int:
    try:
        if args.ledger_command == "verify" and args.file is not None:
            return _verify_file(args, config)
        return asyncio.run(_with_store(args, config))
    except (StoreError, PkiError) as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def _with_store(args: argparse.Namespace, config: Config) -> int:
    store = await open_store(args.database_url or config.database_url, config.data_dir)
    try:
        logs = [
            (p, d)
            for p, d in await store.ledger_logs()
            if args.partner in (None, p) and getattr(args, "direction", None) in (None, d)
        ]
        if args.ledger_command == "show":
            return await _show(store, logs, args.last)
        if args.ledger_command == "verify" and not logs:
            whose = f" with {args.partner}" if args.partner else ""
            print(
                f"nothing to verify: no ledger entries{whose} in {config.data_dir} (no partner "
                "link has released or received anything yet)"
            )
            return 0
        key = _our_key(args, config)
        if args.ledger_command == "export":
            with args.out.open("w", encoding="utf-8") as out:
                await _export(store, logs, key, out)
            print(f"exported {len(logs)} log(s) to {args.out}", file=sys.stderr)
            return 0
        sources = [await _from_store(store, p, d) for p, d in logs]
        return await _verify(sources, key, args, config)
    finally:
        await store.close()


def _our_key(args: argparse.Namespace, config: Config) -> Verifier:
    if getattr(args, "key", None):
        return read_verifier(args.key)
    key = ledger_verifier(config.data_dir / "pki")
    if key is None:
        raise PkiError(
            f"no ledger key in {config.data_dir / 'pki'}: nothing was ever signed here "
            "(or give our public key with --key)"
        )
    return key


def _fmt_time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


async def _show(store: LedgerStore, logs: list[tuple[str, str]], last: int) -> int:
    if not logs:
        print("no ledger entries")
    for partner, direction in logs:
        size = await store.ledger_size(partner, direction)
        checkpoints = await store.ledger_checkpoints(partner, direction)
        cosigned = {c.size for c in await store.ledger_cosignatures(partner, direction)}
        print(
            f"{partner} {direction}: {size} entries, {len(checkpoints)} checkpoints "
            f"({len(cosigned)} cosigned), last checkpoint at "
            f"{checkpoints[-1].size if checkpoints else '-'}"
        )
        for row in await store.ledger_entries(partner, direction, max(0, size - last), last):
            try:
                e = decode_entry(row.data)
            except EntryError as exc:
                print(f"  {row.seq:>8}  (undecodable: {exc})")
                continue
            what = f"{e.decision.value:<8} {e.rule or '-':<16} {e.item[:30]}…"
            if e.partner_index is not None:
                what += f" (partner entry {e.partner_index})"
            print(f"  {row.seq:>8}  {_fmt_time(e.time_ms)}  {what}")
    return 0


@dataclass
class _Source:
    partner: str
    direction: str
    checkpoints: list[StoredCheckpoint] = field(default_factory=list)
    cosignatures: list[StoredCosignature] = field(default_factory=list)
    receipts: list[bytes] = field(default_factory=list)
    rows: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    store: LedgerStore | None = None
    key: str = ""  # the log's key as an export names it

    async def pages(self) -> AsyncIterator[list[tuple[int, bytes, bytes]]]:
        if self.store is None:
            yield self.rows
            return
        start = 0
        while True:
            page = await self.store.ledger_entries(self.partner, self.direction, start)
            if not page:
                return
            yield [(e.seq, e.data, e.leaf) for e in page]
            start = page[-1].seq + 1


async def _from_store(store: LedgerStore, partner: str, direction: str) -> _Source:
    checkpoints = await store.ledger_checkpoints(partner, direction)
    cosignatures = await store.ledger_cosignatures(partner, direction)
    receipts = await store.ledger_receipts(partner, direction)
    return _Source(
        partner,
        direction,
        [StoredCheckpoint(c.size, c.note) for c in checkpoints],
        [StoredCosignature(c.size, c.line) for c in cosignatures],
        [r.note for r in receipts],
        store=store,
    )


async def _verify(
    sources: Iterable[_Source], key: Verifier, args: argparse.Namespace, config: Config
) -> int:
    total = Summary()
    for src in sources:
        partner_key = (
            read_verifier(args.partner_key)
            if args.partner_key
            else partner_verifier(config.data_dir / "pki", src.partner)
        )
        where = f"{src.partner} {src.direction}"
        try:
            verifier = LogVerifier(
                partner=src.partner,
                direction=src.direction,
                origin=origin_for(key.name, src.partner, src.direction),
                log_key=key,
                partner_key=partner_key,
                checkpoints=src.checkpoints,
                cosignatures=src.cosignatures,
                receipts=src.receipts,
            )
            async for page in src.pages():
                verifier.feed(page)
            summary = verifier.finish()
        except Inconsistency as exc:
            print(f"ledger inconsistent: {where}: {exc}")
            return EXIT_INCONSISTENT
        for note in summary.unchecked:
            print(f"{where}: not checked: {note}", file=sys.stderr)
        total.entries += summary.entries
        total.checkpoints += summary.checkpoints
        total.cosigned += summary.cosigned
        total.receipts += summary.receipts
    print(
        f"ledger consistent: {total.entries} entries, {total.checkpoints} checkpoints "
        f"({total.cosigned} cosigned by the partner), {total.receipts} receipts"
    )
    return 0


async def _export(
    store: LedgerStore, logs: list[tuple[str, str]], key: Verifier, out: TextIO
) -> None:
    def line(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj, sort_keys=True) + "\n")

    for partner, direction in logs:
        log = {"partner": partner, "direction": direction}
        line(
            {
                "type": "log",
                **log,
                "origin": origin_for(key.name, partner, direction),
                "key": key.vkey(),
            }
        )
        for c in await store.ledger_checkpoints(partner, direction):
            line({"type": "checkpoint", **log, "size": c.size, "note": c.note.decode()})
        for s in await store.ledger_cosignatures(partner, direction):
            line({"type": "cosignature", **log, "size": s.size, "line": s.line})
        for r in await store.ledger_receipts(partner, direction):
            line({"type": "receipt", **log, "seq": r.seq, "note": r.note.decode()})
        async for page in _Source(partner, direction, store=store).pages():
            for seq, data, leaf in page:
                line(
                    {"type": "entry", **log, "seq": seq, "data": data.decode(), "leaf": leaf.hex()}
                )


def _verify_file(args: argparse.Namespace, config: Config) -> int:
    sources: dict[tuple[str, str], _Source] = {}
    try:
        with args.file.open(encoding="utf-8") as fh:
            for number, text in enumerate(fh, 1):
                try:
                    obj = json.loads(text)
                    src = sources.setdefault(
                        (obj["partner"], obj["direction"]),
                        _Source(obj["partner"], obj["direction"]),
                    )
                    kind = obj["type"]
                    if kind == "log":
                        src.key = obj["key"]
                    elif kind == "checkpoint":
                        src.checkpoints.append(StoredCheckpoint(obj["size"], obj["note"].encode()))
                    elif kind == "cosignature":
                        src.cosignatures.append(StoredCosignature(obj["size"], obj["line"]))
                    elif kind == "receipt":
                        src.receipts.append(obj["note"].encode())
                    elif kind == "entry":
                        src.rows.append(
                            (obj["seq"], obj["data"].encode(), bytes.fromhex(obj["leaf"]))
                        )
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    what = f"{args.file} line {number}: not a ledger record ({exc!r})"
                    print(f"ledger inconsistent: {what}")
                    return EXIT_INCONSISTENT
    except OSError as exc:
        raise PkiError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    selected = [s for s in sources.values() if args.partner in (None, s.partner)]
    if args.key:
        key = read_verifier(args.key)
    else:
        keys = {s.key for s in selected if s.key}
        if len(keys) != 1:
            raise PkiError(f"{args.file} names {len(keys)} log keys: give ours with --key")
        key = read_verifier(keys.pop())
        print(
            f"checking against the key the file names: {key.vkey()} (pin it with --key)",
            file=sys.stderr,
        )
    return asyncio.run(_verify(selected, key, args, config))
