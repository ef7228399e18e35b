"""The admin API and /metrics, over real HTTPS with client certificates, against real clients."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from cryptography import x509
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from accord.api import admin
from accord.cot.xml import encode_xml
from accord.domain.groups import Membership
from accord.domain.views import Backlog, Sample
from accord.identity import registry
from accord.identity.users import UserStore
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, marker, sa
from tests.waiting import wait_until

TAKV = '<takv device="Pixel 8" platform="ATAK-CIV" os="34" version="5.5.0.3"/>'


def https(server: Server, cert: Path, key: Path) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    ctx.load_cert_chain(cert, key)
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{server.port('https')}", verify=ctx, timeout=10
    )


def as_admin(server: Server) -> httpx.AsyncClient:
    return https(server, server.pki.admin_cert, server.pki.admin_key)


async def tls_client(server: Server, name: str, group: str) -> CotClient:
    cert, key = server.client_cert(name, group)
    return await CotClient.connect(
        server.port("tls"), tls=client_tls_context(cert, key, server.pki.ca_cert)
    )


def local_address(client: CotClient) -> str:
    host, port = client.writer.get_extra_info("sockname")[:2]
    return f"{host}:{port}"


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return metric_values(answer.text)


async def test_admin_sees_every_client_with_its_identity_device_and_traffic(
    server: Server,
) -> None:
    alpha = await tls_client(server, "alice", "Blue")
    bravo = await tls_client(server, "bob", "Blue")
    anon = await CotClient.connect(server.port("tcp"))
    hub = server.running.hub
    await wait_until(lambda: hub.session_count == 3, what="all three attached before sending")
    await alpha.send(sa("ALPHA-1", "ALPHA", extra=TAKV))
    await alpha.send(marker("M-1"))
    await alpha.send(marker("M-2"))
    await bravo.send(sa("BRAVO-1", "BRAVO"))
    await anon.send(sa("ANON-1", "ANON"))
    await bravo.recv_until(lambda e: e.uid == "M-2")
    await alpha.recv_until(lambda e: e.uid == "BRAVO-1")
    await wait_until(lambda: server.counters.events_in == 5, what="anon's SA routed")

    async with as_admin(server) as http:
        answer = await http.get("/api/admin/clients")
    assert answer.status_code == 200
    clients = {c["uid"]: c for c in answer.json()["clients"]}
    assert set(clients) == {"ALPHA-1", "BRAVO-1", "ANON-1"}
    a, b, n = clients["ALPHA-1"], clients["BRAVO-1"], clients["ANON-1"]
    assert (a["callsign"], a["user"], a["listener"], a["wire_format"]) == (
        "ALPHA",
        "alice",
        "tls",
        "xml",
    )
    assert a["groups"] == {"in": ["Blue"], "out": ["Blue"]}
    assert a["device"] == {
        "device": "Pixel 8",
        "platform": "ATAK-CIV",
        "os": "34",
        "version": "5.5.0.3",
    }
    assert b["device"] == {"device": "", "platform": "", "os": "", "version": ""}
    assert a["address"] == local_address(alpha)
    assert n["address"] == local_address(anon)
    # What each sent and what was delivered to it: Blue hears Blue only, anon hears nobody.
    assert (a["events_in"], a["events_out"]) == (3, 1)
    assert (b["events_in"], b["events_out"]) == (1, 3)
    assert (n["events_in"], n["events_out"], n["user"], n["listener"]) == (1, 0, "", "tcp")
    assert n["groups"] == {"in": ["__ANON__"], "out": ["__ANON__"]}
    assert a["drops"] == {"malformed": 0, "rate_limited": 0, "queue_full": 0}
    connected = dt.datetime.fromisoformat(a["connected_at"])
    last = dt.datetime.fromisoformat(a["last_event_at"])
    assert connected <= last <= dt.datetime.now(dt.UTC)
    assert len({c["id"] for c in clients.values()}) == 3


async def test_device_follows_the_latest_sa(server: Server) -> None:
    alpha = await tls_client(server, "alice", "Blue")
    await alpha.send(sa("ALPHA-1", "ALPHA", extra=TAKV))
    async with as_admin(server) as http:

        async def device_version() -> str:
            clients = (await http.get("/api/admin/clients")).json()["clients"]
            return str(clients[0]["device"]["version"]) if len(clients) == 1 else ""

        assert await wait_until(device_version) == "5.5.0.3"
        await alpha.send(sa("ALPHA-1", "ALPHA", extra=TAKV.replace("5.5.0.3", "5.6.0.1")))
        await wait_until(lambda: server.counters.events_in == 2, what="the second SA routed")
        assert await device_version() == "5.6.0.1"


async def test_status_tells_version_listeners_counters_and_history(server: Server) -> None:
    alpha = await tls_client(server, "alice", "Blue")
    await alpha.send(sa("ALPHA-1", "ALPHA"))
    await wait_until(lambda: server.counters.events_in == 1, what="the SA routed")
    assert server.running.history_writer is not None
    await server.running.history_writer.flush()
    async with as_admin(server) as http:
        status = (await http.get("/api/admin/status")).json()
    assert status["server"] == "Accord"
    assert status["version"]
    assert status["uptime_s"] >= 0
    assert status["ports"] == server.running.ports
    listeners = {item["name"]: item for item in status["listeners"]}
    assert set(listeners) == {"tcp", "tls", "udp"}
    assert listeners["tls"]["port"] == server.port("tls")
    assert listeners["tls"]["sessions"] == 1
    assert listeners["tls"]["events_in"] == 1
    assert status["sessions"] == 1
    assert status["counters"]["events_in"] == 1
    assert status["store"]["backend"] == "sqlite"
    assert status["store"]["history_events"] == 1  # the SA, archived
    assert status["history_backlog"] == {"queued_events": 0, "lag_s": 0.0}


async def test_only_administrators_get_in(make_server: ServerFactory) -> None:
    server = await make_server(revocation_check_s=0.1)
    cert, key = server.client_cert("mallory", "Blue")
    async with https(server, cert, key) as http:
        for method, path in [
            ("GET", "/api/admin/clients"),
            ("DELETE", "/api/admin/clients/1"),
            ("GET", "/api/admin/status"),
            ("GET", "/api/admin/openapi.json"),
            ("GET", "/metrics"),
        ]:
            answer = await http.request(method, path)
            assert answer.status_code == 403, path
            assert "mallory" in answer.json()["error"]
    # Without a certificate the TLS handshake is refused, as on every path of 8443.
    no_cert = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    async with httpx.AsyncClient(verify=no_cert, timeout=10) as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(f"https://127.0.0.1:{server.port('https')}/api/admin/status")
    # An admin certificate revoked while its connection is open: 401 from then on.
    async with as_admin(server) as http:
        assert (await http.get("/api/admin/status")).status_code == 200
        registry.revoke(server.pki, "admin", dt.datetime.now(dt.UTC))

        async def refusal() -> httpx.Response | None:
            answer = await http.get("/api/admin/status")
            return answer if answer.status_code == 401 else None

        refused = await wait_until(refusal, what="401 once the certificate is revoked")
        assert "certificate" in refused.json()["error"]


async def test_admin_users_lists_who_is_an_administrator(make_server: ServerFactory) -> None:
    server = await make_server(admin_users=("ops", "alice"))
    issued = x509.load_pem_x509_certificate(server.pki.admin_cert.read_bytes())
    assert issued.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "ops"
    for path in (server.pki.admin_cert, server.pki.admin_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cert, key = server.client_cert("alice")
    async with https(server, cert, key) as http:
        assert (await http.get("/api/admin/status")).status_code == 200


async def test_disconnect_closes_the_clients_socket(server: Server) -> None:
    alpha = await tls_client(server, "alice", "Blue")
    bravo = await tls_client(server, "bob", "Blue")
    await alpha.send(sa("ALPHA-1", "ALPHA"))
    await bravo.recv_until(lambda e: e.uid == "ALPHA-1")
    async with as_admin(server) as http:
        clients = (await http.get("/api/admin/clients")).json()["clients"]
        (target,) = [c for c in clients if c["uid"] == "ALPHA-1"]
        answer = await http.delete(f"/api/admin/clients/{target['id']}")
        assert answer.status_code == 200
        assert answer.json() == {"disconnected": target["id"]}
        with pytest.raises(ConnectionError):
            await alpha.recv_until(lambda e: False)
        # The others are told it left, and it is gone from the list.
        await bravo.recv_until(lambda e: e.type == "t-x-d-d")
        left = (await http.get("/api/admin/clients")).json()["clients"]
        assert [c["uid"] for c in left] == [""]  # bravo, which sent nothing
        missing = await http.delete(f"/api/admin/clients/{target['id']}")
        assert missing.status_code == 404
        assert str(target["id"]) in missing.json()["error"]
        assert (await http.delete("/api/admin/clients/999999")).status_code == 404


async def test_metrics_are_prometheus_text_and_move_with_the_traffic(server: Server) -> None:
    async with as_admin(server) as http:
        before = await scrape(http)
        assert before[("accord_sessions", (("listener", "tls"),))] == 0
        alpha = await tls_client(server, "alice", "Blue")
        bravo = await tls_client(server, "bob", "Blue")
        await wait_until(lambda: server.running.hub.session_count == 2, what="both attached")
        for i in range(5):
            await alpha.send(marker(f"M-{i}"))
        await bravo.recv_until(lambda e: e.uid == "M-4")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(encode_xml(sa("UDP-1", "UDPONE")), ("127.0.0.1", server.port("udp")))
        writer = server.running.history_writer
        assert writer is not None
        await wait_until(
            lambda: server.counters.events_in == 6 and writer.queued == 0,
            what="the UDP SA routed and every event archived",
        )
        after = await scrape(http)
    tls = (("listener", "tls"),)
    assert after[("accord_sessions", tls)] == 2
    assert after[("accord_events_received_total", tls)] == 5
    assert after[("accord_events_delivered_total", tls)] == 5
    assert after[("accord_events_received_total", (("listener", "udp"),))] == 1
    assert (
        after[("accord_events_dropped_total", (("listener", "tls"), ("reason", "queue_full")))] == 0
    )
    assert after[("accord_send_queue_events", tls)] == 0
    assert after[("accord_history_queue_events", ())] == 0
    assert after[("accord_history_write_lag_seconds", ())] == 0
    assert after[("accord_sessions_opened_total", ())] == 2
    assert ("process_resident_memory_bytes", ()) in after
    # The per-listener families add up to the global counters they break down.
    counters = server.counters
    received = sum(v for (name, _), v in after.items() if name == "accord_events_received_total")
    delivered = sum(v for (name, _), v in after.items() if name == "accord_events_delivered_total")
    assert received == counters.events_in
    assert delivered == counters.events_delivered


async def test_malformed_events_are_counted_by_reason(server: Server) -> None:
    anon = await CotClient.connect(server.port("tcp"))
    await anon.send(b"<event version='2.0' uid='X'><point lat='1'/></event>")  # lacks attributes
    await anon.send(b"<event><detail><unclosed></detail></event>")  # not well-formed
    await anon.send(encode_xml(sa("ANON-1", "ANON")))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"garbage", ("127.0.0.1", server.port("udp")))
    counters = server.counters
    await wait_until(
        lambda: (counters.malformed, counters.udp_malformed, counters.events_in) == (3, 1, 1),
        what="both bad TCP events, the bad datagram and the good SA counted",
    )
    async with as_admin(server) as http:
        values = await scrape(http)
        (client,) = (await http.get("/api/admin/clients")).json()["clients"]
        status = (await http.get("/api/admin/status")).json()

    def malformed(listener: str, reason: str) -> float:
        key = ("accord_events_malformed_total", (("listener", listener), ("reason", reason)))
        return values[key]

    assert malformed("tcp", "invalid_event") == 1
    assert malformed("tcp", "not_well_formed") == 1
    assert malformed("tcp", "too_large") == 0
    assert malformed("udp", "unknown_format") == 1
    assert client["drops"]["malformed"] == 2
    assert client["events_in"] == 1
    tcp = next(item for item in status["listeners"] if item["name"] == "tcp")
    assert tcp["malformed"] == {"invalid_event": 1, "not_well_formed": 1}


async def test_plain_metrics_port_serves_loopback_without_sign_in(
    make_server: ServerFactory,
) -> None:
    server = await make_server(metrics_port=9464)  # any_port: a free one is bound instead

    class HistoryWriter:  # what the history writer will report
        def backlog(self) -> Backlog:
            return Backlog(queued_events=12, lag_s=0.5)

    class Federation:  # any other part with numbers of its own
        def samples(self) -> list[Sample]:
            return [
                Sample("links", "gauge", "Partner links up", 2, (("partner", "north"),)),
                Sample("released_total", "counter", "Events released", 7),
            ]

    server.running.probes.history = HistoryWriter()
    server.running.probes.sources.append(Federation())
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"http://127.0.0.1:{server.port('metrics')}/metrics")
        assert answer.status_code == 200
        values = metric_values(answer.text)
        assert values[("accord_history_queue_events", ())] == 12
        assert values[("accord_history_write_lag_seconds", ())] == 0.5
        assert values[("accord_links", (("partner", "north"),))] == 2
        assert values[("accord_released_total", ())] == 7
        assert (
            await http.get(f"http://127.0.0.1:{server.port('metrics')}/api/admin/status")
        ).status_code == 404


async def test_openapi_document_is_valid_and_lists_every_admin_route(server: Server) -> None:
    async with as_admin(server) as http:
        spec = (await http.get("/api/admin/openapi.json")).json()
        docs = await http.get("/api/admin/docs")
    validate(spec)
    state = admin.AdminState(
        server.running.census,
        server.counters,
        server.running.probes,
        server.running.ports,
        "127.0.0.1",
        None,
        frozenset(),
        lambda request: None,
        0.0,
        lambda: 0.0,
    )
    served = {
        (route.path.replace(":int", ""), method.lower())
        for route in admin.routes(state)
        for method in (getattr(route, "methods", None) or ())
        if method != "HEAD"
    }
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert served == described
    assert docs.status_code == 200
    assert "/api/admin/clients/{id}" in docs.text


async def test_a_tcp_client_signed_in_with_auth_shows_its_user(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "server0"  # the first server of make_server
    data_dir.mkdir()
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    store = UserStore(data_dir, hasher=hasher)
    store.add("carol", "carol password", Membership.both(["Green"]), now_ms=0)
    server = await make_server(tcp_auth=True)
    carol = await CotClient.connect(server.port("tcp"))
    first = b'<auth><cot username="carol" password="carol password" uid="C-1"/></auth>'
    await carol.send(first + encode_xml(sa("CAROL-1", "CAROL")))
    async with as_admin(server) as http:
        # The password check runs in a thread: wait for the session rather than guess a delay.
        async def signed_in() -> list[dict[str, Any]]:
            clients: list[dict[str, Any]] = (await http.get("/api/admin/clients")).json()["clients"]
            return clients if clients and clients[0]["uid"] else []

        (client,) = await wait_until(signed_in, what="carol's session with her SA")
    assert (client["user"], client["uid"], client["listener"]) == ("carol", "CAROL-1", "tcp")
    assert client["groups"] == {"in": ["Green"], "out": ["Green"]}
    assert client["events_in"] == 1
