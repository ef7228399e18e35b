"""DAIDALUS .conf and .daa files: the corpus's own, and errors that name file:line."""

from __future__ import annotations

import math
import re

import pytest

from accord.geo.daidalus import DaidalusError, decode_conf, decode_daa

from .corpus import CORPUS

HEADER = (
    "NAME, lat, lon, alt, trk, gs, vs, time\n"
    "unitless, [deg], [deg], [m], [deg], [m/s], [m/s], [s]\n"
)
ROW_A = "A, 38.55, 68.78, 100.0, 90.0, 10.0, 0.0, {t}\n"
ROW_B = "B, 38.55, 68.79, 100.0, 270.0, 10.0, 0.0, {t}\n"


def test_uas_conf_gives_the_documented_thresholds() -> None:
    config = decode_conf((CORPUS / "uas.conf").read_text(), "uas.conf")
    assert (config.horizontal_m, config.vertical_m, config.lookahead_s) == (150.0, 30.0, 60.0)
    assert config.level_times() == ((45.0, 55.0), (25.0, 35.0), (0.0, 0.0))
    assert (config.alerting_m, config.alerting_n) == (2, 4)
    assert (config.hysteresis_s, config.persistence_s) == (5.0, 4.0)
    raw = decode_conf((CORPUS / "uas_raw.conf").read_text(), "uas_raw.conf")
    assert (raw.alerting_m, raw.alerting_n, raw.hysteresis_s, raw.persistence_s) == (0, 0, 0, 0)
    assert raw.level_times() == ((45.0, 45.0), (25.0, 25.0), (0.0, 0.0))


def _conf(**override: str) -> str:
    lines = {
        "lookahead_time": "2.0 [min]",
        "alerting_m": "2",
        "alerting_n": "4",
        "alerters": "X",
        "X_alert_1_alerting_time": "55 [s]",
        "X_alert_1_detector": "det_1",
        "X_alert_2_alerting_time": "25 [s]",
        "X_alert_2_early_alerting_time": "40 [s]",
        "X_alert_2_detector": "det_1",
        "X_alert_3_alerting_time": "0 [s]",
        "X_alert_3_detector": "det_1",
        "X_det_1_D": "0.1 [nmi]",
        "X_det_1_H": "100 [ft]",
    }
    lines.update(override)
    return "# test\n" + "".join(f"{k} = {v}\n" for k, v in lines.items() if v != "-")


def test_units_are_converted_and_a_cd3d_cylinder_is_read() -> None:
    config = decode_conf(_conf(), "x.conf")
    assert config.lookahead_s == 120.0
    assert config.horizontal_m == pytest.approx(185.2)
    assert config.vertical_m == pytest.approx(30.48)
    assert config.caution_early_alerting_s == 55.0  # no early time: the alerting time
    assert config.warning_early_alerting_s == 40.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"junk line": "-", "lookahead_time": "60 [s] extra [s]"}, "x.conf:2: lookahead_time"),
        ({"lookahead_time": "sixty [s]"}, "x.conf:2: lookahead_time: 'sixty' is not a number"),
        ({"lookahead_time": "inf [s]"}, "is not a finite number"),
        ({"lookahead_time": "60 [m]"}, "unit [m] is not a time unit"),
        ({"alerting_m": "1.5"}, "x.conf:3: alerting_m must be a whole number"),
        ({"alerters": "-"}, "no 'alerters = NAME' line"),
        ({"X_alert_3_alerting_time": "-", "X_alert_3_detector": "-"}, "has levels [1, 2]"),
        ({"X_det_1_D": "-"}, "no cylinder for detector 'X_det_1'"),
        ({"X_alert_2_detector": "det_2", "X_det_2_D": "1 [nmi]", "X_det_2_H": "100 [ft]"},
         "use different volumes"),
        ({"X_det_1_WCV_TTHR": "35 [s]"}, "a tau threshold is not supported"),
        ({"h_pos_z_score": "1.5"}, "sensor-uncertainty mitigation is not supported"),
        ({"alerting_m": "5"}, "need 1 <= M <= N"),
    ],
)  # fmt: skip
def test_conf_errors_name_the_line(override: dict[str, str], message: str) -> None:
    with pytest.raises(DaidalusError) as info:
        decode_conf(_conf(**override), "x.conf")
    assert message in str(info.value)


def test_conf_line_that_is_not_key_value_is_named() -> None:
    with pytest.raises(DaidalusError, match=r"^x.conf:2: not a 'key = value \[unit\]' line"):
        decode_conf("# c\nwhat is this\n", "x.conf")


def test_daa_file_is_read_in_steps_ownship_first() -> None:
    text = HEADER + ROW_A.format(t=0) + ROW_B.format(t=0) + ROW_A.format(t=1) + ROW_B.format(t=1)
    scenario = decode_daa(text, "x.daa")
    assert scenario.aircraft == ("A", "B")
    assert [t for t, _ in scenario.steps] == [0.0, 1.0]
    first = scenario.steps[0][1][0]
    assert (first.uid, first.track_deg, first.speed_mps, first.own) == ("A", 90.0, 10.0, True)


def test_daa_velocity_columns_and_units_are_converted() -> None:
    text = (
        "NAME lat lon alt vx vy vz time\n"
        "[none] [deg] [deg] [ft] [knot] [knot] [fpm] [s]\n"
        "A, 38.55, 68.78, 1000, 10, 0, 600, 0\n"
    )
    state = decode_daa(text, "x.daa").steps[0][1][0]
    assert state.alt_m == pytest.approx(304.8)
    assert state.track_deg == pytest.approx(90.0)
    assert state.speed_mps == pytest.approx(10 * 1852 / 3600)
    assert state.vertical_speed_mps == pytest.approx(3.048)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NAME, lat\n", "x.daa:1: a .daa file needs a header row and a units row"),
        (HEADER.replace("[s]\n", "\n"), "x.daa:2: 7 units for 8 columns"),
        (HEADER.replace("trk, gs", "a, b"), "x.daa:1: missing column(s) trk and gs"),
        (HEADER.replace("NAME, ", "").replace("unitless, ", ""), "missing column(s) name"),
        (HEADER.replace("[m/s], [m/s]", "[m], [m/s]"), "x.daa:2: column gs has unit [m]"),
        (HEADER, "x.daa:2: no states after the units row"),
        (HEADER + "A, 38.55, 68.78\n", "x.daa:3: 3 values for 8 columns"),
        (HEADER + ROW_A.format(t="soon"), "x.daa:3: time = 'soon' is not a number"),
        (HEADER + ROW_A.format(t=0).replace("A,", " ,"), "x.daa:3: empty aircraft name"),
        (HEADER + ROW_A.format(t=0).replace("38.55", "nan"), "x.daa:3: A: not a number"),
        (HEADER + ROW_A.format(t=0).replace("38.55", "95"), "x.daa:3: A: coordinates out"),
        (HEADER + ROW_A.format(t=0).replace("10.0", "9000"), "x.daa:3: A: absurd speed"),
        (HEADER + ROW_A.format(t=1) + ROW_B.format(t=0), "x.daa:4: time 0.0 s goes back"),
        (HEADER + ROW_A.format(t=0) + ROW_A.format(t=0), "x.daa:4: A twice at time 0.0 s"),
    ],
)
def test_daa_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(DaidalusError) as info:
        decode_daa(text, "x.daa")
    assert str(info.value).startswith(message) or message in str(info.value)
    assert re.match(r"^x\.daa:\d+: ", str(info.value))


def test_every_corpus_scenario_reads() -> None:
    for path in sorted((CORPUS / "scenarios").glob("*.daa")):
        scenario = decode_daa(path.read_text(), path.name)
        assert len(scenario.steps) == 91
        assert all(math.isfinite(s.lat_deg) for _, states in scenario.steps for s in states)
