"""A shared mission's file whose content cannot be fetched from the partner (its package port
down: a link flap) is tried again before it is given up and counted; real sockets, real store."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

from accord.domain.partners import Partner
from accord.federation.file_shares import FileShares
from accord.store.blobs import Blobs
from accord.store.opening import open_store

DIGEST = "ab" * 32


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once it is closed


async def test_a_file_fetch_that_fails_is_tried_again_then_given_up_and_counted(
    tmp_path: Path,
) -> None:
    store = await open_store("", tmp_path)
    try:
        shares = FileShares(
            store,
            Blobs(tmp_path / "blobs"),
            own_url=lambda h: f"https://us/{h}",
            partner_url=lambda h: f"https://us-for-partners/{h}",
            client_tls=lambda p: ssl.create_default_context(),
            max_bytes=1 << 20,
            wall_ms=lambda: 0,
        )
        shares.retry_delays_s = (0.01, 0.02)
        runner = asyncio.create_task(shares.run())
        partner = Partner(name="B", ca_sha256="cd" * 32)
        url = f"https://127.0.0.1:{closed_port()}/Marti/sync/content?hash={DIGEST}"
        async with asyncio.timeout(10):
            while shares._group is None:  # run() has opened its task group
                await asyncio.sleep(0.001)
            shares.fetch(partner, url, DIGEST, "map.zip", ("x",))
            while shares.failed == 0:
                await asyncio.sleep(0.005)
        assert shares.fetch_attempts == 3  # the first and two more, then given up
        assert shares.fetched == 0
        shares.stop()
        await runner
    finally:
        await store.close()
