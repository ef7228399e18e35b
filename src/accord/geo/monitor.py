"""Separation alerts for own tracks against every other track, as position updates come in.

:class:`SeparationMonitor` is pure: it is fed tracks and ``now`` and returns
:class:`AlertChange` values (a pair's shown level went up or down). Each pair with at least one
own track has its own alerting state (:mod:`accord.geo.alerting`); it is sampled whenever one
of its tracks is updated, the other dead-reckoned to the same instant. Tracks updated at the
same instant are fed as one batch (:meth:`update_many`), so a pair is sampled once with both new
states; a later sample at an instant already sampled replaces that sample.

Scale: tracks live in a :class:`~accord.geo.grid.Grid` (own tracks in a second one), with cells
sized so that an update only meets the tracks it could reach within the look-ahead; a track
too fast (or too uncertain) for the cells is kept in a short list that every update meets.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from accord.geo.alerting import AlertFilter, new_filter
from accord.geo.config import SeparationConfig
from accord.geo.encounter import Encounter, evaluate
from accord.geo.grid import M_PER_DEG, Grid
from accord.geo.track import Track, track_problem
from accord.geo.volume import horizontal_base_m

INDEX_MARGIN_M = 500.0  # slack on the index reach for a track's own widening


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The same key for (a, b) and (b, a): what both sides of a link compute for a pair."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True, slots=True)
class AlertChange:
    """A pair's shown level changed at ``encounter.time_s`` (0 = cleared)."""

    level: int
    previous: int
    encounter: Encounter
    reason: str = "sample"  # "sample", or "forgotten" (a track timed out or left the air)

    @property
    def pair(self) -> tuple[str, str]:
        return pair_key(self.encounter.ownship, self.encounter.intruder)


@dataclass(slots=True)
class _Pair:
    ownship: str
    intruder: str
    config: SeparationConfig
    state: AlertFilter
    before: AlertFilter  # the state before the last sample (to replace a same-instant sample)
    encounter: Encounter | None = None


@dataclass(slots=True)
class MonitorCounters:
    updates: int = 0
    samples: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


class SeparationMonitor:
    """Per-pair alerting for own tracks vs all others; see the module docstring."""

    def __init__(
        self,
        config: SeparationConfig | None = None,
        partner_configs: Mapping[str, SeparationConfig] | None = None,
    ) -> None:
        self.config = config or SeparationConfig()
        self.partner_configs = dict(partner_configs or {})
        every = (self.config, *self.partner_configs.values())
        self._h_max = max(c.horizontal_m for c in every)
        # How far a track can matter is judged with the widest of the configurations.
        self._widest = dataclasses.replace(
            self.config,
            **{
                key: max(getattr(c, key) for c in every)
                for key in (
                    "lookahead_s",
                    "k_sigma",
                    "unknown_ce_m",
                    "age_accel_mps2",
                    "max_age_s",
                    "unknown_speed_mps",
                )
            },
        )
        self._index_reach_m = (
            self.config.index_speed_mps * self._widest.lookahead_s + INDEX_MARGIN_M
        )
        # A query reaches H + its own reach + the cells' reach: cells a third of the widest
        # query keep the area scanned close to the circle that matters.
        cell = (self._h_max + 2.0 * self._index_reach_m) / 3.0
        self.tracks: dict[str, Track] = {}
        self._terms: dict[str, tuple[float, float, float, float, float]] = {}
        self._partner: dict[str, str] = {}
        self._all = Grid(cell)
        self._own = Grid(cell)
        self._wide: set[str] = set()  # tracks whose reach exceeds the cells'
        self._pairs: dict[tuple[str, str], _Pair] = {}
        self._by_track: dict[str, set[tuple[str, str]]] = {}
        self.counters = MonitorCounters()

    # -- configuration per pair --------------------------------------------------------------

    def set_partner(self, uid: str, partner: str) -> None:
        """Track ``uid`` was released by ``partner`` (its agreed thresholds apply to its pairs)."""
        self._partner[uid] = partner
        for key in self._by_track.get(uid, ()):
            pair = self._pairs[key]
            pair.config = self.config_for(self.tracks[pair.ownship], self.tracks[pair.intruder])

    def config_for(self, own: Track, other: Track) -> SeparationConfig:
        for uid in (other.uid, own.uid):
            partner = self._partner.get(uid)
            if partner in self.partner_configs:
                return self.partner_configs[partner]
        return self.config

    # -- reach: how far a track can matter ---------------------------------------------------

    def _reach_m(self, uid: str, now_s: float) -> float:
        """How far from its reported position track ``uid`` can be inside a volume within the
        look-ahead: its widening, plus where its speed (or assumed speed) takes it."""
        time_s, base, speed, _, _ = self._terms[uid]
        c = self._widest
        age = now_s - time_s if now_s > time_s else 0.0
        held = age if age < c.max_age_s else c.max_age_s
        return base + 0.5 * c.age_accel_mps2 * held * held + speed * (c.lookahead_s + age)

    def _remember(self, track: Track) -> None:
        c = self._widest
        speed = track.speed_mps if track.velocity_known else c.unknown_speed_mps
        assert speed is not None
        base = horizontal_base_m(track, c)
        self._terms[track.uid] = (track.time_s, base, speed, track.lat_deg, track.lon_deg)

    # -- input -------------------------------------------------------------------------------

    def update(self, track: Track, now_s: float) -> list[AlertChange]:
        """A new report of one track; the alert changes it causes."""
        return self.update_many((track,), now_s)

    def update_many(self, tracks: Iterable[Track], now_s: float) -> list[AlertChange]:
        """Reports of the same instant (e.g. one step of a replay): each pair sampled once."""
        fresh: list[Track] = []
        for track in tracks:
            problem = track_problem(track)
            if problem is None and not math.isfinite(now_s):
                problem = "bad time"
            known = self.tracks.get(track.uid)
            if problem is None and known is not None and track.time_s < known.time_s:
                problem = "older than the last report"
            if problem is None and now_s - track.time_s > self.config.track_timeout_s:
                # A report already past the timeout (a client with a wrong clock, an old
                # replay): its doubt would cover the whole grid; tick() would forget it anyway.
                problem = "too old"
            if problem is not None:
                self.counters.dropped[problem] += 1
                continue
            self.counters.updates += 1
            self.tracks[track.uid] = track
            self._remember(track)
            self._index(track, now_s)
            fresh.append(track)
        keys: set[tuple[str, str]] = set()
        for track in fresh:
            keys.update(self._candidates(track, now_s))
        return self._sample(sorted(keys), now_s)

    def tick(self, now_s: float) -> list[AlertChange]:
        """Forget tracks silent for ``track_timeout_s`` (their alerts clear); resample alerts
        not sampled for ``reevaluate_s`` (a track that went quiet still widens and moves);
        move tracks whose doubt outgrew the cells out of them. Call it about once a second."""
        changes: list[AlertChange] = []
        timeout = self.config.track_timeout_s
        for uid in [u for u, t in self.tracks.items() if now_s - t.time_s > timeout]:
            changes.extend(self.forget(uid, now_s))
        for uid, track in self.tracks.items():
            if uid not in self._wide and self._reach_m(uid, now_s + 2.0) > self._index_reach_m:
                self._index(track, now_s + 2.0)
        due = [
            key
            for key, pair in self._pairs.items()
            if pair.state.shown() > 0 and now_s - pair.state.last_time >= self.config.reevaluate_s
        ]
        changes.extend(self._sample(sorted(due), now_s))
        return changes

    def forget(self, uid: str, now_s: float) -> list[AlertChange]:
        """Drop a track (gone, or no longer airborne); its pairs' alerts are cleared."""
        changes: list[AlertChange] = []
        for key in sorted(self._by_track.pop(uid, set())):
            pair = self._pairs.pop(key)
            other = pair.intruder if pair.ownship == uid else pair.ownship
            self._by_track.get(other, set()).discard(key)
            if pair.state.shown() > 0 and pair.encounter is not None:
                changes.append(
                    AlertChange(0, pair.state.shown(), pair.encounter, reason="forgotten")
                )
        self.tracks.pop(uid, None)
        self._terms.pop(uid, None)
        self._partner.pop(uid, None)
        self._all.remove(uid)
        self._own.remove(uid)
        self._wide.discard(uid)
        return changes

    # -- queries -----------------------------------------------------------------------------

    def encounter(self, a: str, b: str) -> Encounter | None:
        """The last sample of the pair, or None."""
        pair = self._pairs.get(pair_key(a, b))
        return pair.encounter if pair else None

    def level(self, a: str, b: str) -> int:
        """The level shown for the pair now (0 if none)."""
        pair = self._pairs.get(pair_key(a, b))
        return pair.state.shown() if pair else 0

    def alerts(self) -> list[tuple[int, Encounter]]:
        """Every pair with a level shown, most severe first."""
        shown = [
            (p.state.shown(), p.encounter)
            for p in self._pairs.values()
            if p.state.shown() > 0 and p.encounter is not None
        ]
        return sorted(shown, key=lambda item: (-item[0], item[1].ownship, item[1].intruder))

    # -- internals ---------------------------------------------------------------------------

    def _index(self, track: Track, now_s: float) -> None:
        uid = track.uid
        if self._reach_m(uid, now_s) > self._index_reach_m:
            self._all.remove(uid)
            self._own.remove(uid)
            self._wide.add(uid)
            return
        self._wide.discard(uid)
        self._all.put(uid, track.lat_deg, track.lon_deg)
        if track.own:
            self._own.put(uid, track.lat_deg, track.lon_deg)
        else:
            self._own.remove(uid)

    def _candidates(self, track: Track, now_s: float) -> Iterable[tuple[str, str]]:
        uid0 = track.uid
        reach = self._reach_m(uid0, now_s)
        grid = self._all if track.own else self._own
        near = set(
            grid.near(track.lat_deg, track.lon_deg, self._h_max + reach + self._index_reach_m)
        )
        near.update(self._wide)
        followed = {uid for key in self._by_track.get(uid0, ()) for uid in key}
        near.update(followed)  # pairs already followed are sampled until they part
        near.discard(uid0)
        terms, tracks, c = self._terms, self.tracks, self._widest
        lat0, lon0, own0 = track.lat_deg, track.lon_deg, track.own
        k_lon = M_PER_DEG * math.cos(math.radians(lat0))
        half_a, max_age, lookahead = 0.5 * c.age_accel_mps2, c.max_age_s, c.lookahead_s
        slack = self._h_max + reach + INDEX_MARGIN_M
        for uid in near:
            if uid not in followed:
                time_s, base, speed, lat, lon = terms[uid]
                age = now_s - time_s if now_s > time_s else 0.0
                held = age if age < max_age else max_age
                bound = slack + base + half_a * held * held + speed * (lookahead + age)
                dy = (lat - lat0) * M_PER_DEG
                dx = ((lon - lon0 + 180.0) % 360.0 - 180.0) * k_lon
                if dx * dx + dy * dy > bound * bound or not (own0 or tracks[uid].own):
                    continue
            yield pair_key(uid0, uid)

    def _sample(self, keys: Iterable[tuple[str, str]], now_s: float) -> list[AlertChange]:
        changes: list[AlertChange] = []
        for key in keys:
            pair = self._pairs.get(key)
            if pair is None:
                a, b = (self.tracks[uid] for uid in key)
                own, other = (a, b) if a.own or not b.own else (b, a)
                config = self.config_for(own, other)
                fresh = new_filter(config)
                pair = _Pair(own.uid, other.uid, config, fresh, fresh)
                self._pairs[key] = pair
                self._by_track.setdefault(key[0], set()).add(key)
                self._by_track.setdefault(key[1], set()).add(key)
            own, other = self.tracks[pair.ownship], self.tracks[pair.intruder]
            config = pair.config
            previous = pair.state.shown()
            base = pair.before if pair.state.last_time == now_s else pair.state
            held = (base.holds(1, now_s), base.holds(2, now_s), base.holds(3, now_s))
            encounter = evaluate(own, other, now_s, config, held)
            self.counters.samples += 1
            pair.before = base
            pair.state = base.apply(encounter.raw_level, now_s)
            pair.encounter = encounter
            if pair.state.shown() != previous:
                changes.append(AlertChange(pair.state.shown(), previous, encounter))
            elif (
                pair.state.shown() == 0
                and encounter.t_in_s is None
                and encounter.horizontal_m
                > config.horizontal_m
                + self._reach_m(own.uid, now_s)
                + self._reach_m(other.uid, now_s)
            ):
                self._drop_pair(key)  # too far apart to matter before the next updates
        return changes

    def _drop_pair(self, key: tuple[str, str]) -> None:
        del self._pairs[key]
        for uid in key:
            self._by_track.get(uid, set()).discard(key)
