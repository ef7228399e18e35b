"""The transport's supervision: a link task that fails is logged and the link redialled."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from accord.domain.metrics import Counters
from accord.federation import transport
from accord.federation.connection import Own
from accord.federation.gate import PolicyGate
from accord.federation.link import Link
from accord.federation.transport import Federation
from accord.server.hub import Hub
from tests.federation.link_pair import B as ORG_B
from tests.federation.link_pair import Journal, partner
from tests.federation.test_link_e2e import until

pytestmark = pytest.mark.timeout(20)


async def test_a_link_that_fails_on_a_bug_is_logged_and_redialled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(transport, "backoff_s", lambda attempt, rand: 0.0)
    fed = Federation(
        [partner(ORG_B, address="127.0.0.1:1")],
        exchange=Hub(Counters(), wall_ms=lambda: 0, new_uid=lambda: "u"),
        gate=PolicyGate({}),
        journal=Journal(),
        own=Own("accord-aaaaaaaaaaaaaaaa", "Org A"),
        cert_chain=(b"", b""),
        base=Path(),
        wall_ms=lambda: 0,
    )
    attempts: list[str] = []

    async def connect(link: Link) -> bool:
        attempts.append(link.key)
        if len(attempts) == 1:
            raise RuntimeError("boom")  # a bug in a connection, not a network failure
        await asyncio.Event().wait()  # the second connection stays
        return True

    monkeypatch.setattr(fed, "_connect", connect)
    with caplog.at_level(logging.ERROR, "accord.federation"):
        await fed.start("127.0.0.1", 0, listen=False)
        try:
            await until(lambda: len(attempts) == 2, 5)
        finally:
            await fed.close()
    (failed,) = [r for r in caplog.records if "link failed" in r.getMessage()]
    assert "RuntimeError('boom')" in failed.getMessage()
    assert failed.exc_info is not None  # with its stack
    assert attempts == ["Org B:outgoing", "Org B:outgoing"]


async def test_a_writer_group_that_dies_tells_the_owner_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fed = Federation(
        [partner(ORG_B)],
        exchange=Hub(Counters(), wall_ms=lambda: 0, new_uid=lambda: "u"),
        gate=PolicyGate({}),
        journal=Journal(),
        own=Own("accord-aaaaaaaaaaaaaaaa", "Org A"),
        cert_chain=(b"", b""),
        base=Path(),
        wall_ms=lambda: 0,
    )
    lines: list[str] = []
    fed.on_failure = lines.append

    async def writers() -> None:
        raise RuntimeError("outbox bug")  # e.g. the outbox writer died of a bug

    monkeypatch.setattr(fed, "_run_writers", writers)
    await fed.start("127.0.0.1", 0, listen=False)
    try:
        await until(lambda: bool(lines), 5)
    finally:
        fed._writers = None  # already gone
        await fed.close()
    assert lines == ["federation: federation writers failed: RuntimeError('outbox bug')"]


async def test_a_close_that_meets_a_failing_stream_still_ends_the_dial_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A gRPC stream cancelled by close() may end with an error of its own (AioRpcError); the
    # connection's TaskGroup then raises that error and drops the cancellation. The dial loop
    # took it for a lost link and slept its backoff (up to 30 s), holding close() that long.
    monkeypatch.setattr(transport, "backoff_s", lambda attempt, rand: 30.0)
    fed = Federation(
        [partner(ORG_B, address="127.0.0.1:1")],
        exchange=Hub(Counters(), wall_ms=lambda: 0, new_uid=lambda: "u"),
        gate=PolicyGate({}),
        journal=Journal(),
        own=Own("accord-aaaaaaaaaaaaaaaa", "Org A"),
        cert_chain=(b"", b""),
        base=Path(),
        wall_ms=lambda: 0,
    )
    streaming = asyncio.Event()

    async def connect(link: Link) -> bool:
        async def stream() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise OSError("stream reset") from None  # fails as it is cancelled

        async with asyncio.TaskGroup() as group:  # as Federation._connect runs its streams
            group.create_task(stream())
            streaming.set()
            await asyncio.Event().wait()
        return True

    monkeypatch.setattr(fed, "_connect", connect)
    await fed.start("127.0.0.1", 0, listen=False)
    await asyncio.wait_for(streaming.wait(), 5)
    async with asyncio.timeout(5):
        await fed.close()
    assert fed.outgoing[ORG_B.name].state == "down"
