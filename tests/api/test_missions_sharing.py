"""MissionSharing between two mission books in memory, their links a direct hand-over: what
is refused is counted and changes nothing (the real link is in tests/federation)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.api.missions_book import MissionBook
from accord.api.missions_sharing import MissionSharing
from accord.domain.groups import Membership
from accord.domain.partners import Partner
from accord.identity.token import TokenService
from accord.missions import model
from accord.policy import Policy, decode_policy
from tests.cot.samples import make_event
from tests.missions.fakes import MemoryMissions

NOW = 1_764_000_000_000
KEY = Ed25519PrivateKey.generate()
A_TO_B = 'name = "a"\npartner = "B"\n[[rule]]\nname = "all"\n'
SHARE = '[[mission]]\nname = "j"\nmissions = ["J*"]\n'


@dataclass
class Hand:
    """A link that hands each frame straight to the other side."""

    partner: Partner
    other: list[MissionSharing] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    sender: Partner | None = None

    def send_mission(self, change: bytes, rule: str, policy: str) -> bool:
        self.frames.append(change)
        assert self.sender is not None
        self.other[0].receive(self.sender, change)
        return True


def side(name: str, other: str, policy: Policy | None) -> tuple[MissionBook, MissionSharing, Hand]:
    book = MissionBook(MemoryMissions(), TokenService(KEY, "t"), None, lambda: NOW)
    hand = Hand(Partner(name=other, ca_sha256="ab" * 32))
    sharing = MissionSharing(
        book,
        {} if policy is None else {other: policy},
        lambda p: [hand],
        [hand.partner],
        wall_ms=lambda: NOW,
    )
    book.on_change = sharing.changed
    return book, sharing, hand


def wire(
    a_policy: str, b_policy: str
) -> tuple[MissionBook, MissionSharing, MissionBook, MissionSharing, Hand, Hand]:
    book_a, share_a, hand_a = side("A", "B", decode_policy(a_policy))
    book_b, share_b, hand_b = side("B", "A", decode_policy(b_policy))
    hand_a.other, hand_a.sender = [share_b], Partner(name="A", ca_sha256="cd" * 32)
    hand_b.other, hand_b.sender = [share_a], Partner(name="B", ca_sha256="ab" * 32)
    return book_a, share_a, book_b, share_b, hand_a, hand_b


async def drain(sharing: MissionSharing, done: Callable[[], bool]) -> None:
    """Run ``sharing``'s applier until ``done`` holds (a deadline, no fixed wait)."""
    task = asyncio.create_task(sharing.run())
    try:
        async with asyncio.timeout(5):
            while not done():
                await asyncio.sleep(0.001)
    finally:
        task.cancel()


def test_a_log_the_origin_does_not_accept_stays_on_the_mirror_and_is_counted() -> None:
    async def run() -> None:
        back = 'name = "b"\npartner = "A"\n[[mission]]\nname = "back"\nmissions = ["J*"]\n'
        book_a, share_a, book_b, share_b, _, hand_b = wire(A_TO_B + SHARE, back)
        mission, change = model.create("Joint", "g-a", frozenset({"x"}), "alice", NOW)
        await book_a.create(mission, change)
        async with book_a.lock:
            mission = (await book_a.all_missions())["g-a"]
            m, changes = model.add_items(mission, [model.Item("u1", "u1", NOW)], NOW)
            await book_a.update(m, changes)
        await drain(share_b, lambda: share_b.applied == 1)
        mirror = next(iter((await book_b.all_missions()).values()))
        assert mirror.name == "A:Joint"
        entry = model.LogEntry("l1", "from b", "bob", NOW, NOW, NOW)
        async with book_b.lock:
            await book_b.update(model.put_log(mirror, entry))
        assert len(hand_b.frames) == 1
        await drain(share_a, lambda: share_a.refused + share_a.applied > 0)
        assert share_a.refused == 1
        assert (await book_a.all_missions())["g-a"].logs == {}

    asyncio.run(run())


def test_bad_frames_are_counted_and_a_partner_without_policy_gets_nothing() -> None:
    async def run() -> None:
        book, sharing, hand = side("A", "B", None)
        sharing.receive(hand.partner, b"{not json")
        sharing.receive(hand.partner, b"\xff" * 10)
        assert sharing.bad == 2
        mission, change = model.create("Joint", "g", frozenset({"x"}), "alice", NOW)
        await book.create(mission, change)
        async with book.lock:
            mission = (await book.all_missions())["g"]
            m, changes = model.add_items(mission, [model.Item("u1", "u1", NOW)], NOW)
            await book.update(m, changes)
        assert hand.frames == []
        assert sharing.withheld == {}

    asyncio.run(run())


def test_a_dest_mission_event_for_a_mirror_reaches_its_subscribers_but_adds_nothing() -> None:
    async def run() -> None:
        book = MissionBook(MemoryMissions(), TokenService(KEY, "t"), None, lambda: NOW)
        mirror, change = model.create("A:Joint", "g-b", frozenset({"x"}), "bob", NOW)
        local, change2 = model.create("Local", "g-l", frozenset({"x"}), "bob", NOW)
        await book.create(dataclasses.replace(mirror, origin="A", origin_guid="g-a"), change)
        await book.create(local, change2)
        sender = Membership(frozenset({"x"}), frozenset({"x"}))
        for name in ("A:Joint", "Local"):
            event = make_event("u7", detail=f'<marti><dest mission="{name}"/></marti>')
            assert book.subscribers(event, sender) == ("bob",)
        task = asyncio.create_task(book.run())
        try:
            async with asyncio.timeout(5):
                while "u7" not in (await book.all_missions())["g-l"].items:
                    await asyncio.sleep(0.001)
        finally:
            task.cancel()
        assert (await book.all_missions())["g-b"].items == {}

    asyncio.run(run())


def test_the_origin_deleting_a_shared_mission_deletes_the_partners_mirror() -> None:
    async def run() -> None:
        book_a, _, book_b, share_b, hand_a, _ = wire(A_TO_B + SHARE, 'name = "b"\npartner = "A"\n')
        mission, change = model.create("Joint", "g-a", frozenset({"x"}), "alice", NOW)
        await book_a.create(mission, change)
        async with book_a.lock:
            mission = (await book_a.all_missions())["g-a"]
            m, changes = model.add_items(mission, [model.Item("u1", "u1", NOW)], NOW)
            await book_a.update(m, changes)
        await drain(share_b, lambda: share_b.applied == 1)
        assert [m.name for m in (await book_b.all_missions()).values()] == ["A:Joint"]
        await book_a.delete((await book_a.all_missions())["g-a"], "alice")
        assert len(hand_a.frames) == 2  # the item, then the deletion
        await drain(share_b, lambda: share_b.applied == 2)
        assert await book_b.all_missions() == {}
        # the same deletion again (a resend) is a duplicate, nothing else happens
        share_b.receive(hand_a.sender or hand_a.partner, hand_a.frames[-1])
        await drain(share_b, lambda: share_b.duplicates == 1)
        assert await book_b.all_missions() == {}

    asyncio.run(run())
