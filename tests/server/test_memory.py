"""Memory back after a storm (issue 13 §2): released once when sessions fall well below peak."""

from __future__ import annotations

import asyncio
import functools
import gc

import pytest

from accord.cot.model import ms_from_iso
from accord.server import memory
from accord.server.memory import (
    COLLECTOR_THRESHOLDS,
    RECLAIM_MIN_PEAK_SESSIONS,
    Reclaim,
    allocator_restart,
    clear_caches,
    release_memory,
    settle_collector,
)


async def settle(reclaim: Reclaim, runs: int) -> None:
    async with asyncio.timeout(5):
        while reclaim.runs < runs:
            await asyncio.sleep(0.001)


async def test_released_once_per_fall_below_half_of_a_real_peak() -> None:
    released: list[int] = []
    reclaim = Reclaim(lambda: released.append(1), delay_s=0.0)
    peak = RECLAIM_MIN_PEAK_SESSIONS * 2
    for n in range(1, peak + 1):
        reclaim.count(n)
    for n in range(peak, 0, -1):  # a wave of disconnects: one release, not one per session
        reclaim.count(n - 1)
    await settle(reclaim, 1)
    await asyncio.sleep(0.01)
    assert released == [1]


async def test_a_handful_of_clients_coming_and_going_is_not_a_storm() -> None:
    reclaim = Reclaim(lambda: None, delay_s=0.0)
    for _ in range(3):
        for n in range(1, 11):
            reclaim.count(n)
        for n in range(10, -1, -1):
            reclaim.count(n)
    await asyncio.sleep(0.01)
    assert reclaim.runs == 0


def test_release_memory_runs_here() -> None:
    release_memory()  # gc + malloc_trim where glibc has it; must never fail


def test_release_memory_empties_accords_caches_and_no_one_elses() -> None:
    # A storm's end refills the hot path's caches with objects scattered over arenas that
    # would otherwise stay resident (issue 13 §2): the release empties them.
    for second in range(100):
        ms_from_iso(f"2026-12-03T10:00:{second % 60:02d}.{second:03d}Z")
    assert ms_from_iso.cache_info().currsize == 100

    @functools.lru_cache(maxsize=8)
    def elsewhere(x: int) -> int:
        return x

    elsewhere.__module__ = "not_accord"
    elsewhere(1)
    assert clear_caches() >= 1
    assert ms_from_iso.cache_info().currsize == 0
    assert elsewhere.cache_info().currsize == 1
    assert ms_from_iso("2026-12-03T10:00:01.001Z") == 1_796_292_001_001  # refills as before
    ms_from_iso("2026-12-03T10:00:02.002Z")
    release_memory()
    assert ms_from_iso.cache_info().currsize == 0


ARGV = ["/venv/bin/python", "/venv/bin/accord", "serve", "--data-dir", "d"]


def test_serve_restarts_itself_on_the_c_allocator_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_TRIM", lambda pad: 1)  # as on glibc
    restart = allocator_restart("malloc", {"HOME": "/root"}, ARGV, "/venv/bin/python")
    assert restart == ("/venv/bin/python", ARGV, {"HOME": "/root", "PYTHONMALLOC": "malloc"})
    assert restart is not None
    # The restarted process has PYTHONMALLOC: it does not restart again.
    assert allocator_restart("malloc", restart[2], ARGV, "/venv/bin/python") is None


def test_the_allocator_is_left_alone_when_configured_set_or_pointless(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "_TRIM", lambda pad: 1)
    assert allocator_restart("pymalloc", {}, ARGV, "/venv/bin/python") is None
    assert allocator_restart("malloc", {"PYTHONMALLOC": "debug"}, ARGV, "/p") is None
    assert allocator_restart("malloc", {}, ARGV, "") is None  # embedded: no interpreter
    monkeypatch.setattr(memory, "_TRIM", None)  # no glibc: nothing returns the pages
    assert allocator_restart("malloc", {}, ARGV, "/venv/bin/python") is None


class _Trimmed(Exception):
    pass


async def test_free_pages_are_returned_periodically() -> None:
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        if len(calls) == 3:
            raise _Trimmed
        return 1

    async with asyncio.timeout(5):
        with pytest.raises(_Trimmed):
            await memory.trim_periodically(0.001, trim)
    assert calls == [0, 0, 0]


async def test_periodic_trim_refuses_to_run_without_malloc_trim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "_TRIM", None)
    assert not memory.can_trim()
    with pytest.raises(RuntimeError, match="can_trim"):
        await memory.trim_periodically(0.001)


def test_the_server_collector_policy_freezes_start_up_and_keeps_clearing_its_caches() -> None:
    # Start-up's objects out of every later scan, young collections rarer (issue 11); the
    # caches frozen with them are still emptied by a release (issue 13 §2).
    thresholds = gc.get_threshold()
    try:
        frozen = settle_collector((12_345, 20, 10))
        assert frozen == gc.get_freeze_count() > 1000
        assert gc.get_threshold() == (12_345, 20, 10)
        assert not any(o is ms_from_iso for o in gc.get_objects())  # frozen: not listed
        ms_from_iso("2026-12-03T10:00:03.003Z")
        assert ms_from_iso.cache_info().currsize >= 1
        release_memory()
        assert ms_from_iso.cache_info().currsize == 0
        assert COLLECTOR_THRESHOLDS[0] > 700  # rarer than Python's default
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
