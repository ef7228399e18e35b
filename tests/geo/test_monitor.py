"""The monitor: own tracks against all others, batches, replacement, timeouts, bad input."""

from __future__ import annotations

import dataclasses
import math

import pytest

from accord.geo.config import SeparationConfig
from accord.geo.enu import EARTH_RADIUS_M
from accord.geo.monitor import SeparationMonitor, pair_key
from accord.geo.track import Track

M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
LAT, LON = 38.55, 68.78


def at(uid: str, east_m: float, t: float, *, track: float = 90.0, speed: float = 10.0,
       own: bool = False, north_m: float = 0.0, alt: float = 100.0) -> Track:  # fmt: skip
    lon = LON + east_m / (M_PER_DEG * math.cos(math.radians(LAT)))
    return Track(uid, t, LAT + north_m / M_PER_DEG, lon, alt, track, speed, own=own)


def head_on(t: float, gap0_m: float = 1500.0) -> list[Track]:
    """Two aircraft closing at 20 m/s from ``gap0_m`` apart at t = 0."""
    return [
        at("own", 10.0 * t, t, own=True),
        at("other", gap0_m - 10.0 * t, t, track=270.0),
    ]


def test_pair_key_is_the_same_both_ways() -> None:
    assert pair_key("b", "a") == pair_key("a", "b") == ("a", "b")


def test_a_head_on_pair_raises_caution_warning_loss_then_clears() -> None:
    monitor = SeparationMonitor()
    seen: list[tuple[float, int, int]] = []
    for step in range(0, 120):
        for change in monitor.update_many(head_on(float(step)), float(step)):
            seen.append((change.encounter.time_s, change.previous, change.level))
            assert change.pair == ("other", "own")
            assert change.encounter.ownship == "own"
    # entry at (1500 - 150) / 20 = 67.5 s; caution when t_in < 45 (raw at 23 s, shown at 24)
    assert seen[:3] == [(24.0, 0, 1), (44.0, 1, 2), (69.0, 2, 3)]
    assert seen[-1][2] == 0
    assert monitor.level("own", "other") == 0


def test_tracks_fed_one_by_one_at_one_instant_are_one_sample() -> None:
    batch, single = SeparationMonitor(), SeparationMonitor()
    for step in range(0, 90):
        t = float(step)
        batch.update_many(head_on(t), t)
        for track in head_on(t):
            single.update(track, t)  # the second report replaces the first sample at t
        assert single.level("own", "other") == batch.level("own", "other")
        assert single.encounter("own", "other") == batch.encounter("own", "other")
    assert single.counters.samples == 2 * batch.counters.samples - 1  # t=0: 'other' unknown


def test_pairs_without_an_own_track_are_not_watched() -> None:
    monitor = SeparationMonitor()
    jet = at("jet", 3_000.0, 0.0, track=270.0, speed=300.0)  # too fast for the cells
    for step in range(0, 80):
        t = float(step)
        tracks = [dataclasses.replace(x, own=False) for x in head_on(t)]
        assert monitor.update_many([*tracks, dataclasses.replace(jet, time_s=t)], t) == []
    assert monitor.encounter("own", "other") is None
    assert monitor.alerts() == []


def test_far_tracks_are_not_sampled() -> None:
    monitor = SeparationMonitor()
    monitor.update(at("own", 0.0, 0.0, own=True), 0.0)
    monitor.update(at("far", 50_000.0, 0.0), 0.0)
    assert monitor.counters.samples == 0
    assert monitor.encounter("own", "far") is None


def test_bad_tracks_are_dropped_and_counted_and_the_rest_go_on() -> None:
    monitor = SeparationMonitor()
    bad = dataclasses.replace(at("x", 0.0, 0.0), lat_deg=float("nan"))
    absurd = dataclasses.replace(at("y", 0.0, 0.0), speed_mps=5000.0)
    monitor.update_many([bad, absurd, *head_on(0.0, 300.0)], 0.0)
    monitor.update(at("z", 0.0, 0.0), float("nan"))
    assert monitor.counters.dropped == {"not a number": 1, "absurd speed": 1, "bad time": 1}
    assert "x" not in monitor.tracks
    assert monitor.level("own", "other") == 2  # at once (first sample): loss in 7.5 s
    monitor.update_many(head_on(1.0, 300.0), 1.0)
    assert monitor.level("own", "other") == 2
    assert monitor.counters.updates == 4
    late = dataclasses.replace(head_on(0.0, 300.0)[1], time_s=0.5)  # arrives after t = 1
    assert monitor.update(late, 1.2) == []
    assert monitor.counters.dropped["older than the last report"] == 1
    assert monitor.tracks["other"].time_s == 1.0


def test_a_track_that_goes_silent_times_out_and_its_alert_clears() -> None:
    config = SeparationConfig(track_timeout_s=10.0)
    monitor = SeparationMonitor(config)
    monitor.update_many([at("own", 0.0, 0.0, own=True, speed=0.0),
                         at("other", 100.0, 0.0, speed=0.0)], 0.0)  # fmt: skip
    assert monitor.level("own", "other") == 3
    assert monitor.tick(5.0) == []  # still there; resampled: still inside
    changes = monitor.tick(11.0)
    assert [(c.level, c.previous, c.reason) for c in changes] == [(0, 3, "forgotten")]
    assert set(monitor.tracks) == set()
    assert monitor.level("own", "other") == 0


def test_tick_resamples_alerts_and_a_silent_intruder_does_not_vanish() -> None:
    monitor = SeparationMonitor()
    monitor.update_many([at("own", 0.0, 0.0, own=True, speed=0.0),
                         at("other", 100.0, 0.0, speed=20.0)], 0.0)  # fmt: skip
    assert monitor.level("own", "other") == 3
    seen = []
    for step in range(1, 9):
        monitor.tick(float(step))
        encounter = monitor.encounter("own", "other")
        assert encounter is not None
        seen.append((encounter.time_s, round(encounter.horizontal_m), encounter.volume_h_m))
    # dead-reckoned away at 20 m/s while its doubt grows (1/2 x 2 m/s2 x age^2), then stale:
    # back where it was last seen, a disc of 20 m/s x age; the hovering own drone's report
    # ages as well (9 m at 3 s; stale, a disc of 0 m/s x age)
    assert seen[2] == (3.0, 160, 150.0 + 9.0 + 9.0)
    assert seen[7] == (8.0, 100, 150.0 + 160.0)
    assert monitor.level("own", "other") == 3
    assert monitor.tick(8.5) == []  # sampled 0.5 s ago: not due
    assert monitor.counters.samples == 9


def test_forget_clears_alerts_of_a_track_no_longer_airborne() -> None:
    monitor = SeparationMonitor()
    monitor.update_many(head_on(0.0, 100.0), 0.0)
    assert monitor.alerts()[0][0] == 3
    changes = monitor.forget("other", 1.0)
    assert [(c.previous, c.level) for c in changes] == [(3, 0)]
    assert monitor.alerts() == []
    assert monitor.forget("nobody", 1.0) == []


def test_a_fast_aircraft_outside_the_cells_still_meets_own_drones() -> None:
    monitor = SeparationMonitor(SeparationConfig(index_speed_mps=20.0))
    own = at("own", 0.0, 0.0, own=True, speed=5.0)
    jet = at("jet", 9_000.0, 0.0, track=270.0, speed=200.0)
    monitor.update_many([own, jet], 0.0)
    encounter = monitor.encounter("own", "jet")
    assert encounter is not None
    assert encounter.t_in_s == pytest.approx((9_000.0 - 150.0) / 205.0, abs=0.05)
    assert monitor.level("own", "jet") == 1
    # it slows down: back in the cells, still followed
    monitor.update(dataclasses.replace(jet, time_s=1.0, speed_mps=10.0), 1.0)
    assert "jet" in monitor.tracks


def test_an_old_track_moves_out_of_the_cells_at_tick() -> None:
    monitor = SeparationMonitor(SeparationConfig(track_timeout_s=600.0))
    monitor.update(at("own", 0.0, 0.0, own=True), 0.0)
    monitor.update(at("quiet", 5_000.0, 0.0, track=90.0, speed=30.0), 0.0)
    monitor.tick(200.0)  # its disc has grown past what the cells cover: checked by everyone
    monitor.update(at("own", 0.0, 200.0, own=True), 200.0)
    encounter = monitor.encounter("own", "quiet")
    assert encounter is not None  # 5 km away, but 30 m/s x 200 s of doubt reaches it
    assert encounter.raw_level == 3


def test_partner_thresholds_apply_to_that_partners_tracks() -> None:
    wide = SeparationConfig(horizontal_m=400.0)
    monitor = SeparationMonitor(partner_configs={"org-b": wide})
    monitor.set_partner("other", "org-b")
    monitor.update_many(head_on(0.0, 700.0), 0.0)
    encounter = monitor.encounter("own", "other")
    assert encounter is not None
    assert encounter.volume_h_m == 400.0
    assert encounter.t_in_s == pytest.approx(15.0, abs=0.01)


def test_a_partner_named_after_the_pair_began_applies_from_the_next_sample() -> None:
    monitor = SeparationMonitor(partner_configs={"org-b": SeparationConfig(horizontal_m=400.0)})
    monitor.update_many(head_on(0.0, 700.0), 0.0)
    assert monitor.encounter("own", "other").volume_h_m == 150.0
    monitor.set_partner("other", "org-b")
    monitor.update_many(head_on(1.0, 700.0), 1.0)
    assert monitor.encounter("own", "other").volume_h_m == 400.0


def test_pairs_that_part_are_forgotten_while_clear() -> None:
    monitor = SeparationMonitor()
    for step in range(0, 400):
        monitor.update_many(head_on(float(step), 1500.0), float(step))
    # 400 s later they are 6.5 km apart, diverging: nothing kept for the pair
    assert monitor.encounter("own", "other") is None
    assert monitor.level("own", "other") == 0


def test_alerts_lists_the_most_severe_first() -> None:
    monitor = SeparationMonitor()
    monitor.update_many(
        [
            at("own", 0.0, 0.0, own=True, speed=0.0),
            at("near", 100.0, 0.0, speed=0.0),
            at("closing", 0.0, 0.0, north_m=500.0, track=180.0, speed=20.0),
        ],
        0.0,
    )
    assert [(level, e.intruder) for level, e in monitor.alerts()] == [(3, "near"), (2, "closing")]


def test_a_report_older_than_the_timeout_is_dropped_not_spread_over_the_world() -> None:
    # A client with a wrong clock (or an old replay): 11 months old, its disc would cover the
    # grid and every query would scan all of it.
    monitor = SeparationMonitor()
    now = 30_000_000.0
    monitor.update(at("own", 0.0, now, own=True), now)
    assert monitor.update(at("stale", 50.0, now - 28_000_000.0), now) == []
    assert monitor.counters.dropped == {"too old": 1}
    assert "stale" not in monitor.tracks
    monitor.update(at("fresh", 50.0, now - 1.0), now)
    assert "fresh" in monitor.tracks
