"""Waiting on a condition instead of sleeping a fixed time.

A fixed ``asyncio.sleep(0.2)`` is either too short on a loaded machine (a flaky failure) or
too long on an idle one (a slow suite). :func:`wait_until` polls what the sleep stood for and
returns as soon as it holds; past its deadline it fails and says what it was waiting for.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

WAIT_TIMEOUT_S = 10.0  # generous: a condition that holds returns at once; only failures wait
POLL_INTERVAL_S = 0.01


async def wait_until(
    condition: Callable[[], T | Awaitable[T]],
    timeout_s: float = WAIT_TIMEOUT_S,
    what: str = "",
    interval_s: float = POLL_INTERVAL_S,
) -> T:
    """Poll ``condition`` (a plain or async callable) until it returns a truthy value, and
    return that value; AssertionError naming ``what`` (or the callable) after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            name = what or getattr(condition, "__name__", repr(condition))
            raise AssertionError(f"still not true after {timeout_s} s: {name} (last: {value!r})")
        await asyncio.sleep(interval_s)


async def next_turn() -> None:
    """Let the event loop finish its current turn (the hub flushes at the end of one): a
    single yield, not a wait for time to pass."""
    await asyncio.sleep(0)
