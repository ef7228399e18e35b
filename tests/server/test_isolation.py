"""Isolation as a property (issue 3): random parties in random IN/OUT groups, random traffic.

The real :class:`Hub` (real roster, real routing, real events decoded from XML) is driven with
recording sinks in place of sockets. Each example draws 2-8 parties, each with random IN and
OUT subsets of a small group alphabet and a wire format, plus a UDP (mesh) source; some parties
are connected from the start, the rest join later. Every party's first event is its SA. Then
come turns of random steps: SA updates (sometimes under a new callsign), markers, SA-shaped
events about someone else (which must not rebind anything), directed events (``marti/dest``
by callsign, uid or group, to parties that exist or not, "All Streaming"), GeoChat to "All
Chat Rooms", to named rooms with member lists, with and without ``marti/dest``, pings, mesh
SAs, parties leaving, parties (re)joining, and live regroups. Steps come in turns of one to
three; the loop turn ends (the hub flushes) after every turn. A regroup may fall mid-turn: what
was sent before it keeps the groups it was sent with, and a party leaving mid-turn gets a
prefix of what it was due.

The oracle below is written from the reference (tak-protocol §5.1) and never calls
``accord.domain.routing``: what S sends may reach R iff ``S.inbound & R.outbound`` and R is
not S. After every turn each session must have received exactly what the oracle says, in
order: nothing unreachable (isolation), everything allowed exactly once (completeness).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections import Counter
from dataclasses import dataclass, field

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.cot.model import CotEvent, WireFormat
from accord.cot.xml import decode_xml, encode_xml, escape_attr
from accord.domain.contacts import Party
from accord.domain.groups import Membership
from accord.domain.metrics import Counters
from accord.server.hub import Hub
from tests.cot.samples import make_event
from tests.server.fakes import Clock, RecordingSink
from tests.waiting import next_turn

# A few seconds by default; RUN_SLOW=1 (or ISOLATION_EXAMPLES=N) digs deeper.
ISOLATION_EXAMPLES = int(
    os.environ.get("ISOLATION_EXAMPLES", "2000" if os.environ.get("RUN_SLOW") == "1" else "150")
)
ISOLATION = settings(
    max_examples=ISOLATION_EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

BASE_MS = 1_700_000_000_000  # the wall clock; every event is a little later, never stale
GROUPS = ("A", "B", "C", "__ANON__")
MAX_PARTIES = 8
UIDS = tuple(f"ANDROID-{i}" for i in range(MAX_PARTIES))
CALLSIGNS = tuple(f"ALPHA{i}" for i in range(MAX_PARTIES))
ALT_CALLSIGNS = tuple(f"BRAVO{i}" for i in range(MAX_PARTIES))
MESH_UIDS = ("MESH-0", "MESH-1")
ALL_STREAMING = "All Streaming"
ALL_CHAT_ROOMS = "All Chat Rooms"
PING, PONG, DELETE, GROUPS_CHANGED, CHAT = "t-x-c-t", "t-x-c-t-r", "t-x-d-d", "t-x-g-c", "b-t-f"


# -- steps ----------------------------------------------------------------------------------------
# ``who`` picks a connected party (modulo how many there are), ``pick`` an offline one.
@dataclass(frozen=True)
class Join:
    """A party connects; its SA follows in the same turn, or first thing in the next."""

    pick: int
    report_now: bool


@dataclass(frozen=True)
class Leave:
    who: int


@dataclass(frozen=True)
class Regroup:
    who: int
    membership: Membership


@dataclass(frozen=True)
class Report:
    """A new SA of the party itself, maybe under its other callsign."""

    who: int
    alt: bool


@dataclass(frozen=True)
class Spoof:
    """An SA-shaped event (contact with endpoint) about another uid: a plain broadcast."""

    who: int
    uid: str
    callsign: str


@dataclass(frozen=True)
class Marker:
    who: int


@dataclass(frozen=True)
class Directed:
    """A marker with ``<marti>`` and these dests; no dest at all means a broadcast."""

    who: int
    dests: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Chat:
    """GeoChat; ``room`` None is "All Chat Rooms". ``dests`` (marti) take precedence."""

    who: int
    room: str | None
    members: tuple[str, ...]
    dests: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Ping:
    who: int


@dataclass(frozen=True)
class MeshReport:
    """An SA from the UDP source: broadcast, and replayed to newcomers until stale."""

    uid: str


Step = Join | Leave | Regroup | Report | Spoof | Marker | Directed | Chat | Ping | MeshReport


@dataclass(frozen=True)
class Scenario:
    memberships: tuple[Membership, ...]
    formats: tuple[WireFormat, ...]
    initial: int  # parties 0..initial-1 connect first, one turn each
    mesh: Membership
    turns: tuple[tuple[Step, ...], ...]


groups_st = st.frozensets(st.sampled_from(GROUPS))
membership_st = st.one_of(
    st.builds(Membership, groups_st, groups_st),
    st.builds(Membership.both, st.frozensets(st.sampled_from(GROUPS), min_size=1)),  # usual
)
who_st = st.integers(0, MAX_PARTIES - 1)


def names(*pool: str) -> st.SearchStrategy[str]:
    """A name of the pool, half the time one of the first parties' (likely connected)."""
    return st.one_of(st.sampled_from(pool[:3]), st.sampled_from(pool))


callsign_st = st.one_of(
    names(*CALLSIGNS),
    names(*ALT_CALLSIGNS),
    st.just(ALL_STREAMING),
    st.sampled_from(("MESH0", "NOBODY")),
)
uid_st = st.one_of(names(*UIDS), st.sampled_from((*MESH_UIDS, "ANDROID-GONE")))
dest_st = st.one_of(
    st.tuples(st.just("callsign"), callsign_st),
    st.tuples(st.just("uid"), uid_st),
    st.tuples(st.just("group"), st.sampled_from((*GROUPS, "Z"))),
)
dests_st = st.lists(dest_st, max_size=3).map(tuple)
step_st: st.SearchStrategy[Step] = st.one_of(
    st.builds(Join, who_st, st.booleans()),
    st.builds(Leave, who_st),
    st.builds(Regroup, who_st, membership_st),
    st.builds(Report, who_st, st.booleans()),
    st.builds(
        Spoof,
        who_st,
        st.one_of(names(*UIDS), st.just("ANDROID-GHOST")),
        st.one_of(names(*CALLSIGNS), st.just("GHOST")),
    ),
    st.builds(Marker, who_st),
    st.builds(Directed, who_st, dests_st),
    st.builds(Directed, who_st, dests_st),
    st.builds(
        Chat,
        who_st,
        st.sampled_from((None, None, "Ops", "Cyan")),
        st.lists(uid_st, max_size=4).map(tuple),
        st.one_of(st.just(()), dests_st),
    ),
    st.builds(
        Chat,
        who_st,
        st.sampled_from((None, "Ops")),
        st.lists(uid_st, max_size=4).map(tuple),
        st.just(()),
    ),
    st.builds(Ping, who_st),
    st.builds(MeshReport, st.sampled_from(MESH_UIDS)),
)


@st.composite
def scenarios(draw: st.DrawFn, *, turn_size: int = 3) -> Scenario:
    n = draw(st.integers(2, MAX_PARTIES))
    return Scenario(
        memberships=tuple(draw(st.lists(membership_st, min_size=n, max_size=n))),
        formats=tuple(draw(st.lists(st.sampled_from(WireFormat), min_size=n, max_size=n))),
        initial=draw(st.integers(1, n)),
        mesh=draw(membership_st),
        turns=tuple(
            tuple(t)
            for t in draw(
                st.lists(st.lists(step_st, min_size=1, max_size=turn_size), min_size=8, max_size=40)
            )
        ),
    )


# -- the oracle -----------------------------------------------------------------------------------
Key = tuple[str, ...]


def key_of(event: CotEvent) -> Key:
    """What identifies a delivered event: (uid, time) for traffic, the notices by kind."""
    if event.type == PONG:
        return ("pong",)
    if event.type == GROUPS_CHANGED:
        return ("groups-changed",)
    if event.type == DELETE:
        found = re.search(r'<link uid="([^"]*)"', event.detail.xml)
        assert found is not None, event.detail.xml
        return ("delete", found.group(1))
    return (event.uid, str(event.time))


def may_reach(sender: Membership, receiver: Membership) -> bool:
    """§5.1: the sender's IN groups against the receiver's OUT groups."""
    return bool(sender.inbound & receiver.outbound)


@dataclass(eq=False)
class Session:
    """One connection as the oracle sees it, and what its sink must hold."""

    index: int
    party: Party
    sink: RecordingSink
    membership: Membership
    callsign: str
    last_sa: Key = ()
    replay: Counter[Key] = field(default_factory=Counter)  # delivered first, in any order
    expected: list[Key] = field(default_factory=list)  # then exactly these, in order

    @property
    def uid(self) -> str:
        return UIDS[self.index]

    def received(self) -> tuple[list[Key], list[Key]]:
        """What the sink holds: the replay part, and the rest."""
        got = [key_of(item.event) for item in self.sink.flushed]
        n = self.replay.total()
        return got[:n], got[n:]

    def truncate(self) -> None:
        """Expect only what was written so far, once it is shown to be a prefix of the due."""
        replayed, rest = self.received()
        assert not Counter(replayed) - self.replay, (self.index, "replay", replayed)
        if len(replayed) < self.replay.total():
            assert not rest
            self.replay = Counter(replayed)
        assert rest == self.expected[: len(rest)], (self.index, rest, self.expected)
        del self.expected[len(rest) :]


class Play:
    """Runs one scenario against the hub and the oracle side by side."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.clock = Clock(BASE_MS)
        uids = (f"notice-{n}" for n in itertools.count())
        self.hub = Hub(Counters(), wall_ms=self.clock, new_uid=lambda: next(uids))
        self.memberships = list(scenario.memberships)
        self.online: list[Session] = []
        self.sessions: list[Session] = []  # every session ever, gone ones too
        self.mesh = self.hub.new_party(scenario.mesh, "udp", receives=False)
        self.mesh_sa: dict[str, Key] = {}
        self.serial = itertools.count(1)
        self.pending: list[Session] = []  # connected, SA due at the start of the next turn
        self.stripped: set[Key] = set()  # keys of events that must arrive without <marti>

    # -- helpers ------------------------------------------------------------------------------
    def event(self, uid: str, type_: str, detail: str = "", how: str = "m-g") -> CotEvent:
        """A real event, decoded from its XML text (so it keeps ``raw``), with a unique time."""
        built = make_event(uid, type_, detail=detail, now_ms=BASE_MS + next(self.serial), how=how)
        return decode_xml(encode_xml(built))

    def sa(self, uid: str, callsign: str) -> CotEvent:
        contact = f'<contact endpoint="*:-1:stcp" callsign="{escape_attr(callsign)}"/>'
        return self.event(uid, "a-f-G-U-C", contact + '<__group name="Cyan" role="Team Member"/>')

    def others(self, sender: Membership, exclude: Session | None) -> list[Session]:
        return [s for s in self.online if s is not exclude and may_reach(sender, s.membership)]

    def pick(self, who: int) -> Session | None:
        """A connected party that has sent its SA."""
        ready = [s for s in self.online if s.last_sa]
        return ready[who % len(ready)] if ready else None

    def submit(self, sender: Session, event: CotEvent, recipients: list[Session]) -> None:
        self.hub.submit(sender.party, event)
        for r in recipients:
            r.expected.append(key_of(event))

    # -- steps --------------------------------------------------------------------------------
    def join(self, index: int, *, report_now: bool = True) -> None:
        membership = self.memberships[index]
        party = self.hub.new_party(membership, f"party{index}")
        sink = RecordingSink(self.scenario.formats[index])
        session = Session(index, party, sink, membership, callsign="")
        # The replay: the latest SA of every connected party and mesh uid that reaches it.
        session.replay.update(s.last_sa for s in self.others_reaching(membership) if s.last_sa)
        session.replay.update(
            k for k in self.mesh_sa.values() if may_reach(self.scenario.mesh, membership)
        )
        self.hub.attach(party, sink)
        self.online.append(session)
        self.sessions.append(session)
        if report_now:
            self.report(session, alt=False)
        else:
            self.pending.append(session)

    def others_reaching(self, receiver: Membership) -> list[Session]:
        return [s for s in self.online if may_reach(s.membership, receiver)]

    def report(self, session: Session, *, alt: bool) -> None:
        session.callsign = (ALT_CALLSIGNS if alt else CALLSIGNS)[session.index]
        event = self.sa(session.uid, session.callsign)
        session.last_sa = key_of(event)
        self.submit(session, event, self.others(session.membership, session))

    def leave(self, session: Session) -> None:
        self.hub.detach(session.party)
        self.online.remove(session)
        # Its socket is gone: it got some prefix of what it was due (what was flushed before
        # it left), and never gets the rest.
        session.truncate()
        if session.last_sa:  # an identified party: the others hear that it left
            for r in self.others(session.membership, session):
                r.expected.append(("delete", session.uid))

    def regroup(self, session: Session, membership: Membership) -> None:
        self.hub.regroup(session.party, membership)
        old = session.membership
        session.membership = self.memberships[session.index] = membership
        session.expected.append(("groups-changed",))
        # Then, as for a newcomer, the latest SAs it can hear now and could not before (the
        # sessions in the order they joined, then the mesh uids)...
        session.expected += [
            s.last_sa
            for s in self.online
            if s is not session
            and s.last_sa
            and may_reach(s.membership, membership)
            and not may_reach(s.membership, old)
        ]
        if may_reach(self.scenario.mesh, membership) and not may_reach(self.scenario.mesh, old):
            session.expected += list(self.mesh_sa.values())
        # ...and its own latest SA to those who can hear it now and could not before.
        if session.last_sa:
            for r in self.online:
                if (
                    r is not session
                    and may_reach(membership, r.membership)
                    and not may_reach(old, r.membership)
                ):
                    r.expected.append(session.last_sa)

    def targets(
        self, sender: Session, dests: tuple[tuple[str, str], ...], uids: tuple[str, ...] = ()
    ) -> list[Session]:
        """Named parties that exist and are reachable, plus members of a narrowing group the
        sender is itself in (IN); never the sender."""
        callsigns = {v for k, v in dests if k == "callsign"}
        uids = (*uids, *(v for k, v in dests if k == "uid"))
        groups = {v for k, v in dests if k == "group"} & sender.membership.inbound
        return [
            r
            for r in self.others(sender.membership, sender)
            if (r.last_sa and r.uid in uids)
            or r.callsign in callsigns
            or groups & r.membership.outbound
        ]

    def directed(self, sender: Session, step: Directed) -> None:
        marti = "".join(f'<dest {k}="{escape_attr(v)}"/>' for k, v in step.dests)
        event = self.event(f"marker-{next(self.serial)}", "b-m-p-s-m", f"<marti>{marti}</marti>")
        if not step.dests:
            recipients = self.others(sender.membership, sender)  # <marti/> alone: broadcast
        elif ("callsign", ALL_STREAMING) in step.dests:
            recipients = self.others(sender.membership, sender)
            self.stripped.add(key_of(event))
        else:
            recipients = self.targets(sender, step.dests)
            self.stripped.add(key_of(event))
        self.submit(sender, event, recipients)

    def chat(self, sender: Session, step: Chat) -> None:
        room = step.room or ALL_CHAT_ROOMS
        members = step.members if step.room else (ALL_CHAT_ROOMS,)
        chatgrp = "".join(f' uid{i}="{escape_attr(u)}"' for i, u in enumerate(members, 1))
        marti = "".join(f'<dest {k}="{escape_attr(v)}"/>' for k, v in step.dests)
        detail = (
            f'<__chat parent="RootContactGroup" groupOwner="false" chatroom="{room}" '
            f'id="{room}" senderCallsign="{sender.callsign}">'
            f'<chatgrp uid0="{sender.uid}"{chatgrp} id="{room}"/></__chat>'
            f'<link uid="{sender.uid}" type="a-f-G-U-C" relation="p-p"/>'
            f'<remarks source="BAO.F.ATAK.{sender.uid}" time="2024-01-01T00:00:00.000Z">hi'
            "</remarks>" + (f"<marti>{marti}</marti>" if marti else "")
        )
        uid = f"GeoChat.{sender.uid}.{room}.{next(self.serial)}"
        event = self.event(uid, CHAT, detail, how="h-g-i-g-o")
        if step.dests:  # marti/dest decides, as for any directed event
            if ("callsign", ALL_STREAMING) in step.dests:
                recipients = self.others(sender.membership, sender)
            else:
                recipients = self.targets(sender, step.dests)
            self.stripped.add(key_of(event))
        elif step.room is None or not step.members:  # All Chat Rooms, or nobody named
            recipients = self.others(sender.membership, sender)
        else:
            recipients = self.targets(sender, (), uids=step.members)
        self.submit(sender, event, recipients)

    def step(self, step: Step) -> None:
        if isinstance(step, Join):
            offline = [i for i in range(len(self.memberships)) if i not in self.online_indexes()]
            if offline:
                self.join(offline[step.pick % len(offline)], report_now=step.report_now)
            return
        if isinstance(step, MeshReport):
            number = MESH_UIDS.index(step.uid)
            event = self.sa(step.uid, f"MESH{number}")
            self.mesh_sa.pop(step.uid, None)  # the roster keeps them newest last
            self.mesh_sa[step.uid] = key_of(event)
            self.hub.submit(self.mesh, event)
            for r in self.others(self.scenario.mesh, None):
                r.expected.append(key_of(event))
            return
        sender = self.pick(step.who)
        if sender is None:
            return
        match step:
            case Leave():
                self.leave(sender)
            case Regroup(membership=membership):
                self.regroup(sender, membership)
            case Report(alt=alt):
                self.report(sender, alt=alt)
            case Spoof(uid=uid, callsign=callsign):
                # Not its own uid: an object it relays, which binds nothing.
                event = self.sa(uid if uid != sender.uid else "ANDROID-GHOST", callsign)
                # Another live session's own uid is not its to use (issue 13 §3): dropped.
                owned = any(s.uid == event.uid and s.last_sa for s in self.online)
                recipients = [] if owned else self.others(sender.membership, sender)
                self.submit(sender, event, recipients)
            case Marker():
                event = self.event(f"marker-{next(self.serial)}", "b-m-p-s-m", "<status/>")
                self.submit(sender, event, self.others(sender.membership, sender))
            case Directed():
                self.directed(sender, step)
            case Chat():
                self.chat(sender, step)
            case Ping():
                event = self.event(f"{sender.uid}-ping", PING, how="h-g-i-g-o")
                self.hub.submit(sender.party, event)
                sender.expected.append(("pong",))

    def online_indexes(self) -> set[int]:
        return {s.index for s in self.online}

    # -- checks -------------------------------------------------------------------------------
    def check(self) -> None:
        """After a flush: every session holds exactly what the oracle says, in order."""
        for s in self.sessions:
            replayed, rest = s.received()
            assert Counter(replayed) == s.replay, (s.index, "replay", replayed, s.replay)
            assert rest == s.expected, (s.index, s.membership, rest, s.expected)
            for item in s.sink.flushed:
                if key_of(item.event) in self.stripped:
                    assert not item.event.detail.has_marti
            # The bindings directed traffic relies on: a relayed SA never moves them.
            bound = s in self.online and bool(s.last_sa)
            assert (self.hub.roster.by_uid(s.uid) is s.party) == bound
            if s.callsign:
                assert (self.hub.roster.by_callsign(s.callsign) is s.party) == bound
        delivered = sum(len(s.sink.flushed) for s in self.sessions)
        assert self.hub.counters.events_delivered == delivered

    async def flush(self) -> None:
        await next_turn()  # the hub flushes at the end of the loop turn
        self.check()

    async def run(self) -> None:
        for index in range(self.scenario.initial):
            self.join(index)
            await self.flush()
        for turn in self.scenario.turns:
            for session in self.pending:
                self.report(session, alt=False)
            self.pending.clear()
            for step in turn:
                self.step(step)
            await self.flush()


def play(scenario: Scenario) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(Play(scenario).run())


@pytest.mark.timeout(max(60, ISOLATION_EXAMPLES // 10))  # some 50 examples a second
@ISOLATION
@given(scenarios())
def test_no_event_reaches_a_session_its_groups_do_not_allow_and_every_allowed_one_arrives(
    scenario: Scenario,
) -> None:
    play(scenario)


def test_a_regroup_later_in_the_turn_does_not_move_what_was_sent_before_it() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        uids = (f"notice-{n}" for n in itertools.count())
        hub = Hub(Counters(), wall_ms=Clock(BASE_MS), new_uid=lambda: next(uids))
        red, blue = Membership.both({"Red"}), Membership.both({"Blue"})
        alpha, bravo, charlie = (
            hub.new_party(m, n) for m, n in ((red, "a"), (blue, "b"), (red, "c"))
        )
        sinks = [RecordingSink(WireFormat.XML) for _ in range(3)]
        for party, sink in zip((alpha, bravo, charlie), sinks, strict=True):
            hub.attach(party, sink)
        await next_turn()
        hub.submit(alpha, make_event("ANDROID-a", now_ms=BASE_MS))  # sent while in Red
        hub.regroup(alpha, blue)  # same loop turn: alpha is moved to Blue
        await next_turn()
        return [i.event.uid for i in sinks[1].flushed], [i.event.uid for i in sinks[2].flushed]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        blue_got, red_got = runner.run(scenario())
    assert blue_got == []  # not what alpha sent as a Red member
    assert red_got == ["ANDROID-a"]  # Red, who was allowed when it was sent, gets it
