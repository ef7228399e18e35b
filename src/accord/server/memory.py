"""Give memory back after a storm (issue 13 §2).

After thousands of sessions (their socket and TLS buffers, many small frames) have come and gone,
the C allocator keeps the freed memory in its arenas: RSS stayed at twice the baseline, idle. When
the number of sessions has fallen well below its peak, the hub asks for a :class:`Reclaim`: a
collection, then ``malloc_trim`` (glibc) hands the free pages back to the system. Elsewhere (no
glibc) it is only the collection.

Before the collection Accord's own ``functools.lru_cache`` caches are emptied. They are bounded,
but a storm refills them at its end: ``ms_from_iso`` alone holds 4,096 timestamp strings with
their ints and links, allocated among the storm's short-lived objects. Python's allocator
gives a 1 MiB arena back only when every object in it is gone, so those ~12,000 small objects
kept ~30 arenas (most of their pools empty) resident after a 5x overload (issue 13 §2). They
refill from the next events, in arenas that are in use anyway.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

log = logging.getLogger("accord.memory")

# Reclaim once the sessions have fallen to this share of their peak, and the peak was at least
# this many (a handful of clients coming and going is not a storm).
RECLAIM_BELOW_SHARE = 0.5
RECLAIM_MIN_PEAK_SESSIONS = 200
# How long after the fall: a wave of disconnects is over by then, and it runs once per wave.
RECLAIM_DELAY_S = 2.0
# glibc gives back free memory at the top of its heap by itself, not the free pages between
# live chunks. What a storm left queued (history writes, slow readers' write buffers) can
# drain after the release at the fall, so free pages are also returned this often; a trim
# of a fragmented 300 MiB heap takes ~20-40 ms, of an idle server's ~1 ms.
TRIM_INTERVAL_S = 10.0
# The cyclic collector's thresholds for a running server (Python's are 700, 10, 10). A server
# keeps tens of thousands of events (the hub's log, the roster, the ledgers) and makes and drops
# a few hundred objects per event; at 700 a young collection ran every couple of events and
# the full ones rescanned the whole retained heap: 15-20 us of a partner link's ~90 us per event
# (issue 11). At 50,000 a young collection runs every few hundred events (~2-5 ms each), and a
# full one a few times as rarely. The cost: up to ~50,000 objects of cyclic garbage (a few MB)
# wait longer for their collection; nothing that is freed by its reference count waits at all.
COLLECTOR_THRESHOLDS = (50_000, 20, 10)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


# The caches among the objects settle_collector froze: the collector lists those no more.
_frozen_caches: list[functools._lru_cache_wrapper[object]] = []


def _caches(objects: Iterable[object], prefix: str) -> list[functools._lru_cache_wrapper[object]]:
    found = []
    for obj in objects:
        if isinstance(obj, functools._lru_cache_wrapper):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str) and module.startswith(prefix):
                found.append(obj)
    return found


def clear_caches(prefix: str = "accord.") -> int:
    """Empty every ``functools.lru_cache`` of the modules under ``prefix``; return how many.

    Found by walking the collector's objects (a cache is a tracked object) rather than by a
    list, so that a cache added anywhere in the package is not forgotten here; those frozen
    at start-up (:func:`settle_collector`) were noted when they were frozen."""
    caches = _caches(gc.get_objects(), prefix)
    caches += (c for c in _frozen_caches if getattr(c, "__module__", "").startswith(prefix))
    for cache in caches:
        cache.cache_clear()
    return len(caches)


def settle_collector(thresholds: tuple[int, int, int] = COLLECTOR_THRESHOLDS) -> int:
    """The server's collector policy, set once when it has started; returns how many objects
    were frozen.

    What exists once the server has started (the imported modules, the configuration, the
    listeners, the policies) lives as long as the process: it is collected once more and then
    frozen (``gc.freeze``), out of every later collection's scan, which then covers only what
    was made since (~83,000 objects of ~83,000 + 5 per retained event in a partner link's
    process). Anything frozen that is freed by its reference count is still freed; only a cycle
    among frozen objects would never be collected, and start-up makes none that it drops.
    Then the thresholds (see ``COLLECTOR_THRESHOLDS``)."""
    gc.collect()
    _frozen_caches.extend(_caches(gc.get_objects(), ""))
    gc.freeze()
    gc.set_threshold(*thresholds)
    return gc.get_freeze_count()


def release_memory() -> None:
    """Empty the caches, collect cycles and return the allocator's free pages to the system."""
    clear_caches()
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


def can_trim() -> bool:
    """Whether the C allocator can be asked to return free pages (glibc's ``malloc_trim``)."""
    return _TRIM is not None


async def trim_periodically(
    interval_s: float = TRIM_INTERVAL_S, trim: Callable[[int], int] | None = None
) -> None:
    """Return the C allocator's free pages every ``interval_s`` (a task of the app)."""
    trim = trim or _TRIM
    if trim is None:
        raise RuntimeError("no malloc_trim here: start this task only where can_trim()")
    while True:
        await asyncio.sleep(interval_s)
        trim(0)


def allocator_restart(
    allocator: str, environ: Mapping[str, str], argv: Sequence[str], executable: str
) -> tuple[str, list[str], dict[str, str]] | None:
    """How to start this process again on the C allocator, or None if it need not.

    Python's own allocator (pymalloc) hands a 1 MiB arena back only when every object in it is
    gone. A storm's short-lived objects spread over new arenas, and the few that outlive it
    (C-level free lists, caches, counters) keep them: after a 5x overload ~40 arenas stayed
    resident with their live bytes back at the baseline, +30 % RSS (issue 13 §2). On glibc's
    malloc the same objects keep 4 KiB pages, and ``malloc_trim`` returns the rest. The
    allocator is chosen when the interpreter starts, so ``accord serve`` execs itself once
    with ``PYTHONMALLOC=malloc`` (same pid, nothing opened yet). A PYTHONMALLOC the
    environment sets is kept; without glibc (no malloc_trim) there is nothing to gain."""
    if allocator != "malloc" or "PYTHONMALLOC" in environ or _TRIM is None:
        return None
    if not executable or not argv:
        return None  # embedded or frozen: no interpreter to start again
    return executable, list(argv), {**environ, "PYTHONMALLOC": "malloc"}


class Reclaim:
    """Watches a session count; releases memory once after it falls well below its peak."""

    __slots__ = ("_armed", "_delay_s", "_peak", "_release", "runs")

    def __init__(
        self, release: Callable[[], None] = release_memory, delay_s: float = RECLAIM_DELAY_S
    ) -> None:
        self._peak = 0
        self._armed = False
        self._release = release
        self._delay_s = delay_s
        self.runs = 0

    def count(self, sessions: int) -> None:
        """Called as sessions come and go, with how many there are now."""
        if sessions > self._peak:
            self._peak = sessions
            return
        if (
            self._armed
            or self._peak < RECLAIM_MIN_PEAK_SESSIONS
            or sessions > self._peak * RECLAIM_BELOW_SHARE
        ):
            return
        self._armed = True
        asyncio.get_running_loop().call_later(self._delay_s, self._run, sessions)

    def _run(self, sessions: int) -> None:
        self._armed = False
        self._peak = sessions  # the next storm is measured from here
        self.runs += 1
        self._release()
        log.info("memory released after sessions fell to %d", sessions)
