"""Password sign-in on 8446 as CloudTAK's node-tak does it: ``/oauth/token``, then the Marti
API and enrollment with the bearer token, each limited to the user's groups."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.domain.groups import Membership
from accord.identity.token import Audience, TokenService, ensure_token_key
from accord.identity.users import UserStore
from tests.conftest import Server, ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa
from tests.e2e.test_enrollment import assert_certificate_config, csr_for
from tests.e2e.test_history import archived
from tests.e2e.test_marti import https
from tests.e2e.test_packages import commo_upload, package_bytes, sha256

PASSWORD = "correct horse battery"


@pytest.fixture
async def server(make_server: ServerFactory, tmp_path) -> Server:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "server0"  # where make_server puts its first server
    data_dir.mkdir()
    users = UserStore(data_dir)
    now_ms = int(time.time() * 1000)
    users.add("alice", PASSWORD, Membership.both(["Blue"]), now_ms=now_ms)
    users.add("rita", PASSWORD, Membership.both(["Red"]), now_ms=now_ms)
    return await make_server(revocation_check_s=0.1)


def webtak(server: Server, token: str | None = None) -> httpx.AsyncClient:
    """The 8446 port as node-tak reaches it (it does not check the server's certificate; we
    trust the CA), with ``Authorization: Bearer`` when a token is given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{server.port('enroll')}",
        verify=ssl.create_default_context(cafile=str(server.pki.ca_cert)),
        headers=headers,
        timeout=10,
    )


async def login(server: Server, user: str = "alice", password: str = PASSWORD) -> str:
    """node-tak's OAuth.login: the grant in the query string, a POST with no body."""
    async with webtak(server) as http:
        answer = await http.post(
            "/oauth/token",
            params={"grant_type": "password", "username": user, "password": password},
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert answer.headers["cache-control"] == "no-store"
    return str(body["access_token"])


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def node_tak_parse(jwt: str) -> dict[str, object]:
    """node-tak's OAuth.parse: Buffer.from(jwt, 'base64') (url alphabet taken, '.' skipped),
    split at '}', the second piece is the payload."""
    text = jwt.replace("-", "+").replace("_", "/").replace(".", "")
    decoded = base64.b64decode(text[: len(text) // 4 * 4]).decode("utf-8", errors="replace")
    return dict(json.loads(decoded.split("}")[1] + "}"))


async def test_node_tak_signs_in_and_reads_the_token(server: Server) -> None:
    token = await login(server)
    contents = node_tak_parse(token)
    assert contents["sub"] == "alice"
    assert isinstance(contents["aud"], str)
    assert isinstance(contents["exp"], int)
    now = time.time()
    assert contents["nbf"] == contents["iat"]
    assert now - 60 < float(str(contents["iat"])) <= now + 1
    # The same grant as a form body (RFC 6749 §4.3.2) works too.
    async with webtak(server) as http:
        form = await http.post(
            "/oauth/token",
            data={"grant_type": "password", "username": "alice", "password": PASSWORD},
        )
    assert form.status_code == 200
    assert node_tak_parse(form.json()["access_token"])["sub"] == "alice"


async def test_wrong_credentials_and_bad_grants_get_oauth_errors(server: Server) -> None:
    async with webtak(server) as http:
        wrong = await http.post(
            "/oauth/token",
            params={"grant_type": "password", "username": "alice", "password": "nope"},
        )
        assert wrong.status_code == 400
        assert wrong.json() == {"error": "invalid_grant", "error_description": "Bad credentials"}
        other = await http.post("/oauth/token", params={"grant_type": "client_credentials"})
        assert other.json()["error"] == "unsupported_grant_type"
        empty = await http.post("/oauth/token", params={"grant_type": "password"})
        assert (empty.status_code, empty.json()["error"]) == (400, "invalid_request")
        assert (await http.get("/oauth/token")).status_code == 405
    assert server.counters.enroll_auth_failed == 1


async def test_a_bearer_user_sees_only_its_groups_contacts_packages_and_history(
    server: Server,
) -> None:
    streams: list[CotClient] = []
    uids = {}
    for group in ("Blue", "Red"):
        cert, key = server.client_cert(f"{group.lower()}-phone", group)
        client = await CotClient.connect(
            server.port("tls"), tls=client_tls_context(cert, key, server.pki.ca_cert)
        )
        uids[group] = new_uid()
        await client.send(sa(uids[group], group.upper()))
        streams.append(client)
    red_package = package_bytes(seed=21)
    async with https(server, "red-uploader", "Red") as red:
        assert (await commo_upload(red, red_package, name="red.zip")).status_code == 200
    blue_package = package_bytes(seed=22)
    async with https(server, "blue-uploader", "Blue") as blue:
        assert (await commo_upload(blue, blue_package, name="blue.zip")).status_code == 200
    await archived(server, len(uids))

    async with webtak(server, await login(server, "alice")) as alice:

        async def both_online() -> bool:
            return len((await alice.get("/Marti/api/contacts/all")).json()) == 1

        await eventually(both_online)
        contacts = (await alice.get("/Marti/api/contacts/all")).json()
        assert [c["callsign"] for c in contacts] == ["BLUE"]
        ends = (await alice.get("/Marti/api/clientEndPoints")).json()["data"]
        assert [e["uid"] for e in ends] == [uids["Blue"]]
        groups = (await alice.get("/Marti/api/groups/all")).json()["data"]
        assert {g["name"] for g in groups} == {"Blue"}
        found = (await alice.get("/Marti/api/sync/search")).json()["data"]
        assert [f["hash"] for f in found] == [sha256(blue_package)]
        hidden = await alice.get("/Marti/sync/content", params={"hash": sha256(red_package)})
        assert hidden.status_code == 404
        mine = await alice.get("/Marti/sync/content", params={"hash": sha256(blue_package)})
        assert mine.content == blue_package
        assert (await alice.get(f"/Marti/api/cot/xml/{uids['Red']}")).status_code == 404
        assert (await alice.get(f"/Marti/api/cot/xml/{uids['Blue']}")).status_code == 200
        history = (await alice.get("/api/history")).json()["events"]
        assert {e["uid"] for e in history} == {uids["Blue"]}

    async with webtak(server, await login(server, "rita")) as rita:
        contacts = (await rita.get("/Marti/api/contacts/all")).json()
        assert [c["callsign"] for c in contacts] == ["RED"]
        assert (await rita.get(f"/Marti/api/cot/xml/{uids['Blue']}")).status_code == 404


async def test_without_a_valid_bearer_token_the_api_answers_401(server: Server) -> None:
    token = await login(server)
    stranger = TokenService(Ed25519PrivateKey.generate(), server.config.server_names[0])
    assert server.running.tokens is not None
    own = server.running.tokens
    now = time.time()
    refused = [
        None,  # no token at all: 8446 takes no anonymous or basic Marti caller
        "not-a-token",
        token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),  # signature broken
        stranger.issue("alice", Audience.API, now),  # another server's key
        own.issue("alice", Audience.MISSION, now),  # ours, but for another purpose
        own.issue("alice", Audience.WEB, now),
        own.issue("alice", Audience.API, now - 86_400, lifetime_s=60),  # expired
        own.issue("nobody", Audience.API, now),  # no such user
    ]
    for bad in refused:
        async with webtak(server, bad) as http:
            assert (await http.get("/Marti/api/contacts/all")).status_code == 401, bad
            assert (await http.get("/Marti/api/tls/config")).status_code == 401, bad
    async with webtak(server, token) as http:
        assert (await http.get("/Marti/api/contacts/all")).status_code == 200
    # The admin API is for certificates on 8443 only.
    async with webtak(server, token) as http:
        assert (await http.get("/api/clients")).status_code == 404


async def test_a_disabled_users_token_stops_working(server: Server) -> None:
    token = await login(server)
    async with webtak(server, token) as http:
        assert (await http.get("/Marti/api/contacts/all")).status_code == 200  # it did work
    UserStore(server.config.data_dir).set_disabled("alice", True, now_ms=int(time.time() * 1000))
    async with webtak(server, token) as http:

        async def refused() -> bool:
            return (await http.get("/Marti/api/contacts/all")).status_code == 401

        await eventually(refused)


async def test_bearer_token_enrols_as_node_tak_does(server: Server) -> None:
    token = await login(server)
    async with webtak(server, token) as http:
        config = await http.get("/Marti/api/tls/config")
        assert config.status_code == 200
        assert_certificate_config(config.content)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signed = await http.post(
            "/Marti/api/tls/signClient/v2",
            params={"clientUid": "alice (ETL)", "version": "3"},
            headers={"Accept": "application/json"},
            content=csr_for("alice", key),
        )
        assert signed.status_code == 200, signed.text
        cert = x509.load_der_x509_certificate(base64.b64decode(signed.json()["signedCert"]))
        assert cert.subject.rfc4514_string().startswith("CN=alice")
        # A CSR for someone else is refused: the token names the user.
        other = await http.post("/Marti/api/tls/signClient/v2", content=csr_for("rita", key))
        assert other.status_code == 400
        # v1 and the profile take basic auth only, as on TAK Server.
        assert (await http.post("/Marti/api/tls/signClient", content=b"x")).status_code == 401
        assert (await http.get("/Marti/api/tls/profile/enrollment")).status_code == 401
    assert server.counters.enrolled == 1


async def test_tls_config_is_served_on_8443_to_certificates(server: Server) -> None:
    async with https(server, "alice") as http:
        answer = await http.get("/Marti/api/tls/config")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    assert_certificate_config(answer.content)


async def test_the_token_key_is_made_once_in_the_data_directory(
    make_server: ServerFactory,
) -> None:
    server = await make_server(enroll_port=0)  # made at start, whichever ports are served
    key = server.pki.root / "token.key"
    assert key.stat().st_mode & 0o777 == 0o600
    before = key.read_bytes()
    assert server.running.tokens is not None
    token = server.running.tokens.issue("alice", Audience.API, time.time())
    # What a restart does: the key is read again, not made anew; old tokens still verify.
    again = TokenService(ensure_token_key(server.pki.root), server.config.server_names[0])
    assert key.read_bytes() == before
    assert again.verify(token, Audience.API, time.time()).subject == "alice"


async def test_wrong_passwords_count_once_whichever_port_they_come_through(
    make_server: ServerFactory,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    data_dir = tmp_path / "server0"
    data_dir.mkdir()
    UserStore(data_dir).add("alice", PASSWORD, Membership.both(["Blue"]), now_ms=0)
    server = await make_server(http_port=8080)
    plain = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.port('http')}", auth=("alice", "guess"), timeout=10
    )
    async with plain:  # five wrong basic-auth passwords on the plain-HTTP Marti port...
        for _ in range(5):
            assert (await plain.get("/Marti/api/contacts/all")).status_code == 401
    async with webtak(server) as http:  # ...and this address waits on 8446 as well
        answer = await http.post(
            "/oauth/token",
            params={"grant_type": "password", "username": "alice", "password": PASSWORD},
        )
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) >= 59


async def test_a_password_change_ends_the_users_tokens(server: Server) -> None:
    token = await login(server)
    async with webtak(server, token) as http:
        assert (await http.get("/Marti/api/contacts/all")).status_code == 200
        assert (await http.get("/Marti/api/tls/config")).status_code == 200
    later_ms = (int(time.time()) + 2) * 1000  # a whole second after the token's iat
    UserStore(server.config.data_dir).set_password("alice", "a new passphrase", now_ms=later_ms)
    async with webtak(server, token) as http:

        async def refused() -> bool:
            marti = await http.get("/Marti/api/contacts/all")
            enrol = await http.get("/Marti/api/tls/config")
            return marti.status_code == 401 and enrol.status_code == 401

        await eventually(refused)
