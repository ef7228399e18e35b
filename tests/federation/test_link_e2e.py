"""Real Accord servers on loopback, linked over gRPC with mutual TLS and pinned CAs."""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from accord.app import Running, start
from accord.config import Config
from accord.cot.model import CotEvent
from accord.domain.partners import Partner
from accord.federation.contract import Released
from accord.federation.trust import fingerprint
from accord.identity.pki import PkiPaths, ensure_federation_certificate, ensure_pki
from tests.e2e.clients import OPEN_CLIENTS, CotClient, contact_of, marker, new_uid, sa

pytestmark = pytest.mark.timeout(60)


# One PKI per organisation name for the whole run, copied into each test's data dir: RSA keys
# cost ~0.3 s per organisation, most of a short federation test.
_PKI_TEMPLATES = Path(tempfile.mkdtemp(prefix="accord-test-pki-"))
atexit.register(shutil.rmtree, _PKI_TEMPLATES, True)


def _pki(name: str, into: Path) -> PkiPaths:
    names = ("localhost", "127.0.0.1")
    template = _PKI_TEMPLATES / name
    if not template.exists():
        now = dt.datetime.now(dt.UTC)
        ensure_federation_certificate(ensure_pki(template, names, now), names, now)
    shutil.copytree(template, into)
    return ensure_pki(into, names, dt.datetime.now(dt.UTC))


class Org:
    """One organisation's server: its data dir and CA exist before it starts."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.data_dir = root / name
        paths = _pki(name, self.data_dir / "pki")
        self.ca_file = str(paths.ca_cert)
        from cryptography import x509

        self.ca_sha256 = fingerprint(x509.load_pem_x509_certificate(paths.ca_cert.read_bytes()))
        self.running: Running | None = None

    def partner(self, *, dial: Org | None = None, **extra: Any) -> Partner:
        """This org as a partner of another; ``dial``: the other dials this one."""
        address = f"127.0.0.1:{dial.port}" if dial is not None else ""
        settings: dict[str, Any] = {"share_all": True, "callsign_prefix": f"[{self.name}] "}
        settings.update(extra)
        return Partner(
            name=self.name,
            ca_sha256=self.ca_sha256,
            ca_file=self.ca_file,
            address=address,
            **settings,
        )

    @property
    def port(self) -> int:
        assert self.running is not None
        return self.running.ports["federation"]

    def link(self, partner: str) -> Any:
        assert self.running is not None
        fed = self.running.federation
        assert fed is not None
        return fed.outgoing.get(partner) or fed.incoming[partner]


def config(org: Org, partners: tuple[Partner, ...], **overrides: Any) -> Config:
    settings: dict[str, Any] = {
        "tls_port": 0,
        "https_port": 0,
        "udp_port": 0,
        "enroll_port": 0,
        "drone_port": 0,  # no MAVLink feed (and no geoid model to load at each start)
        "archive": False,
        "server_names": ("localhost", "127.0.0.1"),
    }
    return Config(data_dir=org.data_dir, partners=partners, **{**settings, **overrides})


Starter = Callable[..., Awaitable[Running]]


@pytest.fixture
async def orgs(tmp_path: Path) -> AsyncIterator[tuple[Callable[[str], Org], Starter]]:
    running: list[Running] = []

    async def launch(
        org: Org, *partners: Partner, any_port: bool = True, gate: Any = None, **kw: Any
    ) -> Running:
        org.running = await start(config(org, partners, **kw), any_port=any_port, gate=gate)
        running.append(org.running)
        return org.running

    yield (lambda name: Org(tmp_path, name)), launch
    while OPEN_CLIENTS:
        await OPEN_CLIENTS.pop().close()
    for r in running:
        await r.close(grace_s=1.0)


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds (TimeoutError after ``timeout``): no fixed waits."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def wait_up(org: Org, partner: str, timeout: float = 10.0) -> None:
    await until(lambda: org.link(partner).state == "up", timeout)


async def client(running: Running) -> CotClient:
    """A TCP client of ``running``, returned once the hub has its session."""
    before = running.hub.session_count
    joined = await CotClient.connect(running.ports["tcp"])
    await until(lambda: running.hub.session_count > before)
    return joined


def callsign(event: CotEvent) -> str:
    contact = contact_of(event)
    return contact.callsign if contact else ""


async def pair(make: Callable[[str], Org], launch: Starter, **b_extra: Any) -> tuple[Org, Org]:
    """B listens; A dials B. Both share everything (share_all) unless told otherwise."""
    a, b = make("ORG-A"), make("ORG-B")
    await launch(b, a.partner(**b_extra))
    await launch(a, b.partner(dial=b))
    await wait_up(a, "ORG-B")
    await wait_up(b, "ORG-A")
    return a, b


async def test_link_comes_up_over_mutual_tls_with_pinned_cas(orgs: Any) -> None:
    a, b = await pair(*orgs)
    assert a.link("ORG-B").direction == "outgoing"
    assert b.link("ORG-A").direction == "incoming"
    assert a.link("ORG-B").last_error == ""


async def test_sa_from_a_reaches_b_with_the_callsign_prefix_and_nothing_comes_back(
    orgs: Any,
) -> None:
    a, b = await pair(*orgs)
    assert a.running
    assert b.running
    alice = await client(a.running)
    bob = await client(b.running)
    uid = new_uid()
    await alice.send(sa(uid, "alice"))
    got = await bob.recv_until(lambda e: e.uid == uid)
    assert callsign(got) == "[ORG-A] alice"
    assert "_flow-tags_" in got.detail.xml
    # Bob answers; Alice hears him, prefixed, and never her own SA back through B.
    bob_uid = new_uid()
    await bob.send(sa(bob_uid, "bob"))
    before: list[CotEvent] = []
    heard = await alice.recv_until(lambda e: before.append(e) or e.uid == bob_uid)
    assert callsign(heard) == "[ORG-B] bob"
    # B handed alice's SA to its hub before bob could answer it, so an echo of it would be
    # ahead of bob's SA on the one B->A stream: it is in ``before`` or nowhere.
    assert all(e.uid != uid for e in before)
    assert a.link("ORG-B").events_out >= 1
    assert a.link("ORG-B").events_in >= 1


class WithholdMarkers:
    def release(self, event: CotEvent, partner: Partner, now_ms: int) -> Released | None:
        return None if event.type.startswith("b-m-p") else Released(event, "not a marker", "")

    def inbound(self, event: CotEvent, partner: Partner, now_ms: int) -> CotEvent | None:
        return event


async def test_the_release_gate_withholds_what_it_refuses(orgs: Any) -> None:
    make, launch = orgs
    a, b = make("ORG-A"), make("ORG-B")
    await launch(b, a.partner())
    await launch(a, b.partner(dial=b), gate=WithholdMarkers())
    await wait_up(a, "ORG-B")
    assert a.running
    assert b.running
    alice = await client(a.running)
    bob = await client(b.running)
    await alice.send(marker("marker-1"))
    uid = new_uid()
    await alice.send(sa(uid, "alice"))
    got = await bob.recv_until(lambda e: e.uid in (uid, "marker-1"))
    assert got.uid == uid
    assert a.link("ORG-B").withheld == 1


async def test_deny_by_default_without_share_all(orgs: Any) -> None:
    make, launch = orgs
    a, b = make("ORG-A"), make("ORG-B")
    await launch(b, a.partner())
    await launch(a, b.partner(dial=b, share_all=False))
    await wait_up(a, "ORG-B")
    assert a.running
    assert b.running
    alice = await client(a.running)
    bob = await client(b.running)
    link = a.link("ORG-B")
    withheld = link.withheld
    await alice.send(sa(new_uid(), "alice"))
    # Each event is decided once: withheld, or queued for B (events_out). Decided and not
    # queued, it is not on the wire; and B's hub has routed nothing to bob from A.
    await until(lambda: link.withheld > withheld)
    assert link.events_out == 0
    assert await bob.until_pong() == []
    assert b.link("ORG-A").events_in == 0


async def test_a_wrong_pin_is_refused_with_a_clear_reason(
    orgs: Any, caplog: pytest.LogCaptureFixture
) -> None:
    make, launch = orgs
    a, b, c = make("ORG-A"), make("ORG-B"), make("ORG-C")
    await launch(b, a.partner())
    wrong = Partner(
        name="ORG-B", ca_sha256=c.ca_sha256, ca_file=b.ca_file, address=f"127.0.0.1:{b.port}"
    )
    with caplog.at_level(logging.INFO, "accord.federation"):
        await launch(a, wrong)
        await until(lambda: "refusing" in caplog.text and a.link("ORG-B").last_error)
    link = a.link("ORG-B")
    assert link.state != "up"
    assert "pinned ca_sha256" in link.last_error
    assert "refusing" in link.last_error
    assert "refusing" in caplog.text


async def test_a_partner_from_an_unknown_ca_is_refused(orgs: Any) -> None:
    make, launch = orgs
    a, b, c = make("ORG-A"), make("ORG-B"), make("ORG-C")
    await launch(b, c.partner())  # B trusts C's CA only
    await launch(a, b.partner(dial=b))  # A trusts B, but B does not know A's CA
    await until(lambda: a.link("ORG-B").last_error)
    link = a.link("ORG-B")
    assert link.state != "up"
    assert link.last_error
    assert b.link("ORG-C").events_in == 0


async def test_triangle_delivers_once_to_each_and_never_loops(orgs: Any) -> None:
    make, launch = orgs
    a, b, c = make("ORG-A"), make("ORG-B"), make("ORG-C")
    # A dials B, B dials C, C dials A.
    await launch(a, b.partner(), c.partner())
    await launch(b, a.partner(dial=a), c.partner())
    await launch(c, b.partner(dial=b), a.partner())
    # A's partner C must dial A: restart is avoided by letting C dial A (set above).
    assert a.running
    assert b.running
    assert c.running
    await wait_up(b, "ORG-A")
    await wait_up(c, "ORG-B")
    clients = {}
    for org in (a, b, c):
        assert org.running
        clients[org.name] = await client(org.running)
    uid = new_uid()
    await clients["ORG-A"].send(sa(uid, "alice"))
    for name in ("ORG-B", "ORG-C"):
        await clients[name].recv_until(lambda e: e.uid == uid)
    # A copy going round is ahead of an SA sent from either end now, on every link it would
    # take: from C (towards B and A) and from A (towards B and C). Until those arrive, each
    # client hears no second copy.
    from_a, from_c = new_uid(), new_uid()
    await clients["ORG-A"].send(sa(from_a, "alice-2"))
    await clients["ORG-C"].send(sa(from_c, "carol"))
    waits = {"ORG-A": {from_c}, "ORG-B": {from_a, from_c}, "ORG-C": {from_a}}

    async def heard(name: str) -> list[CotEvent]:
        events: list[CotEvent] = []
        left = set(waits[name])
        while left:
            events.append(await clients[name].recv())
            left.discard(events[-1].uid)
        return events

    names = ("ORG-A", "ORG-B", "ORG-C")
    for name, events in zip(names, await asyncio.gather(*map(heard, names)), strict=True):
        assert [e for e in events if e.uid == uid] == [], name
    total_in = sum(org.running.counters.events_in for org in (a, b, c) if org.running)
    # A's client, then once at B and once at C (+ nothing circling); the same for each of
    # the two SAs sent after it.
    assert total_in <= 4 + 3 + 3


async def test_link_comes_back_after_the_partner_restarts(orgs: Any) -> None:
    make, launch = orgs
    a, b = await pair(make, launch)
    assert a.running
    assert b.running
    tcp_b, fed_b = b.running.ports["tcp"], b.port
    await b.running.close(grace_s=0.5)
    await until(lambda: a.link("ORG-B").state != "up" and a.link("ORG-B").last_error, 5)
    alice = await client(a.running)
    await alice.send(sa(new_uid(), "alice"))  # sent while B is away: not queued (see CHANGELOG)
    # B comes back on the same data dir and ports; A redials with backoff.
    await launch(
        b,
        a.partner(),
        any_port=False,
        tcp_port=tcp_b,
        federation_port=fed_b,
        federation_files_port=0,
    )
    await wait_up(a, "ORG-B", timeout=15)
    # The status shows the link as it is: up, no error from before, and no incoming row
    # (nor metric) for a partner that never dials us.
    fed = a.running.federation
    assert fed is not None
    assert [(v.partner, v.direction, v.state, v.last_error) for v in fed.links()] == [
        ("ORG-B", "outgoing", "up", "")
    ]
    up = [s for s in fed.samples() if s.name == "federation_link_up"]
    assert [(dict(s.labels)["direction"], s.value) for s in up] == [("outgoing", 1.0)]
    assert b.running
    bob = await client(b.running)
    uid = new_uid()
    await alice.send(sa(uid, "alice"))
    got = await bob.recv_until(lambda e: e.uid == uid)
    assert callsign(got) == "[ORG-A] alice"
