"""User groups drive TLS routing, and a change reaches live sessions with a t-x-g-c."""

from __future__ import annotations

import time

from argon2 import PasswordHasher

from accord.domain.groups import Membership
from accord.identity.users import UserStore
from tests.conftest import ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


async def test_user_groups_route_tls_clients_and_follow_changes(
    make_server: ServerFactory, tmp_path
) -> None:
    data_dir = tmp_path / "server0"  # where make_server puts its first server
    data_dir.mkdir()
    store = UserStore(data_dir, hasher=CHEAP)
    now = int(time.time() * 1000)
    store.add("alice", "correct horse", Membership.both(["Blue"]), now_ms=now)
    store.add("bob", "battery staple", Membership.both(["Red"]), now_ms=now)
    server = await make_server(revocation_check_s=0.1)

    async def connect(name: str) -> CotClient:
        cert, key = server.client_cert(name, group="Ignored-OU")  # the user record wins
        ctx = client_tls_context(cert, key, server.pki.ca_cert)
        return await CotClient.connect(server.port("tls"), tls=ctx)

    alice, bob = await connect("alice"), await connect("bob")
    first = new_uid()
    await alice.send(sa(first, "ALICE"))
    assert await bob.expect_silence() == []  # Blue does not reach Red

    store.set_groups("bob", Membership.both(["Red", "Blue"]), now_ms=now + 1)
    notice = await bob.recv(timeout=5)
    assert notice.type == "t-x-g-c"  # told, within the check period
    assert (await bob.recv()).uid == first  # then synced: Blue's latest SAs, as a newcomer
    await alice.send(sa("ALICE-2", "ALICE"))
    assert (await bob.recv()).uid == "ALICE-2"
