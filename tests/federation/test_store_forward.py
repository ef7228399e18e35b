"""Store and forward: a link flap and a sender restart lose nothing and duplicate nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from accord.ledger.entry import decode_entry
from accord.ledger.note import decode_vkey
from accord.ledger.receipt import open_receipts
from accord.store.contract import Store
from tests.e2e.clients import CotClient, marker, new_uid
from tests.federation.test_link_e2e import Org, orgs, pair, until, wait_up

__all__ = ["orgs"]  # the fixture

pytestmark = pytest.mark.timeout(60)


async def _send(client: CotClient, n: int, sent: list[str], a: Org) -> None:
    """``n`` markers from ``client``, returned once A's link to B has taken them all."""
    before = a.link("ORG-B").events_out
    for _ in range(n):
        uid = new_uid("MARK")
        sent.append(uid)
        await client.send(marker(uid))
    await until(lambda: a.link("ORG-B").events_out >= before + n)


async def _until_all(bob: CotClient, sent: list[str], seen: Counter[str]) -> None:
    async with asyncio.timeout(20):
        while not all(seen[u] for u in sent):
            seen[(await bob.recv()).uid] += 1


async def test_link_flap_and_sender_restart_deliver_every_event_exactly_once(orgs: Any) -> None:
    make, launch = orgs
    a, b = await pair(make, launch)
    assert a.running
    assert b.running
    tcp_a, tcp_b, fed_b = a.running.ports["tcp"], b.running.ports["tcp"], b.port
    alice = await CotClient.connect(tcp_a)
    bob = await CotClient.connect(tcp_b)
    sent: list[str] = []
    seen: Counter[str] = Counter()
    await _send(alice, 20, sent, a)
    await _until_all(bob, sent, seen)

    # B goes away; A keeps releasing: the events wait in A's durable outbox.
    await b.running.close(grace_s=0.5)
    await until(lambda: a.link("ORG-B").state != "up", 5)
    await _send(alice, 30, sent, a)
    # A restarts too, mid-stream (same data dir): its outbox survives.
    await a.running.close(grace_s=0.5)
    await launch(
        a,
        b.partner(dial=b),
        any_port=False,
        tcp_port=tcp_a,
        federation_port=0,
        federation_files_port=0,
    )
    assert a.running
    alice = await CotClient.connect(tcp_a)
    await _send(alice, 30, sent, a)

    # B comes back on the same data dir and ports; everything arrives, once.
    await launch(
        b,
        a.partner(),
        any_port=False,
        tcp_port=tcp_b,
        federation_port=fed_b,
        federation_files_port=0,
    )
    assert b.running
    bob = await CotClient.connect(tcp_b)
    await wait_up(a, "ORG-B", timeout=15)
    await _send(alice, 20, sent, a)
    await _until_all(bob, sent, seen)
    # A duplicate (a frame sent again) is ahead of a new event on the link: count what
    # arrives until one sent now does.
    last = new_uid("MARK")
    await alice.send(marker(last))
    await bob.recv_until(lambda e: e.uid == last or seen.update([e.uid]))
    assert set(sent) <= set(seen)
    assert [u for u in sent if seen[u] != 1] == []

    # Counted from both ledgers: every frame A released is in B's mirror, once, and B has
    # checked and receipted A's log (A keeps the receipts).
    ledger_a, ledger_b = a.running.ledger, b.running.ledger
    assert ledger_a is not None
    assert ledger_b is not None
    await ledger_a.flush()
    await ledger_b.flush()
    store_a, store_b = a.running.store, b.running.store
    assert store_a is not None
    assert store_b is not None
    released = await _items(store_a, "ORG-B", "out", "released")
    received = await _items(store_b, "ORG-A", "in", "received")
    assert len(released) >= len(sent)
    assert sorted(received) == sorted(item for _, item in released)
    assert a.running.federation is not None
    witness = a.running.federation.ledger_exchange
    assert witness is not None
    wanted = {index for index, item in released}
    async with asyncio.timeout(15):
        while True:
            receipts = await store_a.ledger_receipts("ORG-B", "out")
            key = decode_vkey((b.data_dir / "pki" / "ledger.vkey").read_text())
            covered = {r.index for row in receipts for r in open_receipts(row.note, key)}
            if covered >= wanted and witness.view("ORG-B")["cosigned"] == ledger_a.size(
                "ORG-B", "out"
            ):
                break
            await asyncio.sleep(0.1)


async def _items(store: Store, partner: str, direction: str, decision: str) -> list[Any]:
    """(index, item) of the entries of one log with ``decision``: released on the sending
    side, received in the mirror (items are the SHA-256 of the exact frame bytes)."""
    rows = await store.ledger_entries(partner, direction, 0, 100_000)
    entries = [decode_entry(row.data) for row in rows]
    if direction == "in":
        return [e.item for e in entries if e.decision.value == decision]
    return [(e.seq, e.item) for e in entries if e.decision.value == decision]
