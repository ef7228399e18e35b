"""Partner contacts across a real link: a contact that leaves is deleted on the other side,
and a newcomer there is not shown it (share_all, a policy that withholds ``t-*``, and a bare
TAK-Server-style peer that sends a departure as a lone contact DELETE)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from accord.app import Running
from accord.cot.model import CotEvent
from accord.domain.routing import DELETE_TYPE, deleted
from accord.federation.proto import fig_pb2
from accord.policy.departure import DEPARTURE_RULE
from accord.store.opening import open_store
from tests.e2e.clients import CotClient, new_uid, sa
from tests.federation.test_link_e2e import callsign, client, orgs, pair
from tests.federation.test_policy_e2e import Pair, pair_factory, verify_ledger
from tests.federation.test_takserver_peer import SERVICE, _tak_event, dialled_in

__all__ = ["orgs", "pair_factory"]  # the fixtures

pytestmark = pytest.mark.timeout(60)

# Pseudonymised uids, and no t-* (control, delete) type ever released by a rule.
POLICY = """
name = "org-a->org-b/contacts"
partner = "org-b"
pseudonymise = true
pseudonym_prefix = "org-a."

[always_withhold]
types = ["t-*"]

[[rule]]
name = "sa"
types = ["a-f-G*"]
"""


def deletes(events: list[CotEvent]) -> list[CotEvent]:
    return [e for e in events if e.type == DELETE_TYPE]


async def not_shown(port: int, uid: str) -> None:
    """A client connecting now is not sent ``uid``'s SA in its first sync (which the server
    sends ahead of its answer to the client's first ping)."""
    carol = await CotClient.connect(port)
    assert all(e.uid != uid for e in await carol.until_pong())


async def heard_before_a_later_sa(origin: Running, listener: CotClient) -> list[CotEvent]:
    """What ``listener`` hears before an SA sent now at ``origin`` reaches it: anything
    ``origin`` sent that way before (a second delete, say) is ahead of it on the one link."""
    erin = await client(origin)
    await erin.send(sa(new_uid(), "erin"))
    before: list[CotEvent] = []
    await listener.recv_until(lambda e: callsign(e).endswith("erin") or before.append(e))
    return before


async def test_a_partner_contact_that_leaves_is_deleted_and_forgotten(orgs: Any) -> None:
    a, b = await pair(*orgs)
    assert a.running
    assert b.running
    alice = await client(a.running)
    bob = await client(b.running)
    uid = new_uid()
    await alice.send(sa(uid, "alice"))
    got = await bob.recv_until(lambda e: e.uid == uid)
    assert callsign(got) == "[ORG-A] alice"
    # While alice is there, B shows her to a newcomer (what must stop once she left).
    dave = await client(b.running)
    await dave.recv_until(lambda e: e.uid == uid)

    await alice.close()
    gone = await bob.recv_until(lambda e: e.type == DELETE_TYPE)
    assert deleted(gone) == (uid, "a-f-G-U-C")
    assert deletes(await heard_before_a_later_sa(a.running, bob)) == []  # one, not one per signal
    await not_shown(b.running.ports["tcp"], uid)


async def test_under_a_policy_withholding_t_types_the_departure_names_the_pseudonym(
    pair_factory: Any,
) -> None:
    pair: Pair = await pair_factory(POLICY)
    alice = await client(pair.ra)
    dave = await client(pair.ra)
    bob = await client(pair.rb)
    alice_uid, dave_uid = new_uid(), new_uid()
    await dave.send(replace(sa(dave_uid, "dave"), type="a-n-G"))  # no rule releases it
    await alice.send(sa(alice_uid, "alice"))
    got = await bob.recv_until(lambda e: e.type == "a-f-G-U-C")
    assert callsign(got) == "[ORG-A] alice"
    pseudonym = got.uid
    assert pseudonym.startswith("org-a.")
    assert pseudonym != alice_uid

    gate = pair.ra.gate
    assert gate is not None
    await dave.close()  # never released: its departure stays withheld
    async with asyncio.timeout(5):
        while gate.decisions("ORG-B").get("(always_withhold)", {}).get("withhold", 0) < 1:
            await asyncio.sleep(0.02)
    await alice.close()
    before: list[CotEvent] = []
    gone = await bob.recv_until(lambda e: before.append(e) or e.type == DELETE_TYPE)
    assert deleted(gone) == (pseudonym, "a-f-G-U-C")
    assert alice_uid not in gone.detail.xml
    assert f'rule="{DEPARTURE_RULE}"' in gone.detail.xml
    assert deletes(before[:-1] + await heard_before_a_later_sa(pair.ra, bob)) == []  # none for dave
    await not_shown(pair.rb.ports["tcp"], pseudonym)
    decisions = gate.decisions("ORG-B")
    assert decisions[DEPARTURE_RULE] == {"release": 1}
    assert decisions["(always_withhold)"] == {"withhold": 1}
    await pair.stop()

    # The departure is in A's ledger as a release like any other, and the ledger verifies.
    await verify_ledger(pair.a.data_dir)
    store = await open_store("", pair.a.data_dir)
    try:
        rows = await store.ledger_entries("ORG-B", "out", 0, 100_000)
    finally:
        await store.close()
    entries = [json.loads(row.data) for row in rows]
    assert [e["decision"] for e in entries if e["rule"] == DEPARTURE_RULE] == ["released"]


async def test_a_tak_servers_lone_contact_delete_deletes_and_forgets_its_contact(
    orgs: Any,
) -> None:
    make, launch = orgs
    b, tak = make("ORG-B"), make("TAKSRV")
    await launch(b, tak.partner())
    assert b.running
    port = b.running.ports["tcp"]
    async with dialled_in(tak, b) as (channel, down):
        bob = await client(b.running)

        outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def messages() -> AsyncIterator[bytes]:
            while (message := await outgoing.get()) is not None:
                yield message

        up = channel.stream_unary(
            SERVICE + "ServerEventStream",
            request_serializer=lambda data: data,
            response_deserializer=fig_pb2.Subscription.FromString,
        )
        call = up(messages())
        report = _tak_event("tak-uid-1")  # a contact's own report: it has an endpoint
        report.event.other = '<detail><contact callsign="tak-user" endpoint="*:-1:stcp"/></detail>'
        await outgoing.put(report.SerializeToString())
        await bob.recv_until(lambda e: e.uid == "tak-uid-1")
        dave = await CotClient.connect(port)
        await dave.recv_until(lambda e: e.uid == "tak-uid-1")  # replayed while present

        # What a TAK Server sends when its client leaves (delContact2protoBuf): no event.
        departure = fig_pb2.FederatedEvent()
        entry = departure.contact
        entry.operation, entry.uid, entry.callsign = fig_pb2.DELETE, "tak-uid-1", "a-f-G-U-C"
        await outgoing.put(departure.SerializeToString())
        gone = await bob.recv_until(lambda e: e.type == DELETE_TYPE)
        assert deleted(gone) == ("tak-uid-1", "a-f-G-U-C")
        await not_shown(port, "tak-uid-1")
        assert b.link("TAKSRV").dropped == 0  # read as a departure, not as a bad event

        await outgoing.put(None)
        await call
        down.cancel()
