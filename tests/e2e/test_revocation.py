"""Revocation: a revoked certificate is refused at the handshake and its live sessions end."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest

from accord.identity import registry
from tests.conftest import ServerFactory
from tests.e2e.clients import CotClient, client_tls_context, new_uid, sa
from tests.waiting import wait_until


async def test_revoked_certificate_is_refused_and_its_live_session_closed(
    make_server: ServerFactory,
) -> None:
    server = await make_server(revocation_check_s=0.1)
    mallory_cert, mallory_key = server.client_cert("mallory")
    ctx = client_tls_context(mallory_cert, mallory_key, server.pki.ca_cert)
    mallory = await CotClient.connect(server.port("tls"), tls=ctx)
    alice_cert, alice_key = server.client_cert("alice")
    alice = await CotClient.connect(
        server.port("tls"), tls=client_tls_context(alice_cert, alice_key, server.pki.ca_cert)
    )
    await mallory.send(sa(new_uid(), "MALLORY"))
    assert (await alice.recv()).detail.contact.callsign == "MALLORY"  # type: ignore[union-attr]

    revoked = registry.revoke(server.pki, "mallory", dt.datetime.now(dt.UTC))
    assert [r.name for r in revoked] == ["mallory"]

    with pytest.raises(ConnectionError):  # the live session is closed within the check period
        await mallory.recv(timeout=5)
    assert (await alice.recv()).type == "t-x-d-d"  # the others see mallory leave

    again = await CotClient.connect(server.port("tls"), tls=ctx)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await again.recv(timeout=5)
    await wait_until(lambda: server.counters.tls_handshake_failed == 1, what="the refusal counted")

    # alice, not revoked, still works
    await alice.send(sa(new_uid(), "ALICE"))
    bob_cert, bob_key = server.client_cert("bob")
    bob = await CotClient.connect(
        server.port("tls"), tls=client_tls_context(bob_cert, bob_key, server.pki.ca_cert)
    )
    assert (await bob.recv()).detail.contact.callsign == "ALICE"  # type: ignore[union-attr]
