"""Separation thresholds: defaults, [separation] keys, and errors that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.config import ConfigError, load
from accord.geo.config import SeparationConfig, SeparationConfigError, from_mapping


def test_defaults_are_the_corpus_uas_configuration() -> None:
    config = SeparationConfig()
    assert (config.horizontal_m, config.vertical_m, config.lookahead_s) == (150.0, 30.0, 60.0)
    assert config.level_times() == ((45.0, 55.0), (25.0, 35.0), (0.0, 0.0))
    assert (config.alerting_m, config.alerting_n) == (2, 4)


def test_keys_replace_defaults_and_ints_stay_ints() -> None:
    config = from_mapping({"horizontal_m": 100, "alerting_m": 3, "k_sigma": 3}, "t")
    assert config.horizontal_m == 100.0
    assert isinstance(config.horizontal_m, float)
    assert config.alerting_m == 3
    assert config.k_sigma == 3.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"radius": 1}, "unknown separation key 'radius'"),
        ({"alerting_m": 1.5}, "alerting_m = 1.5 is not a whole number"),
        ({"alerting_n": True}, "alerting_n = True is not a whole number"),
        ({"horizontal_m": "150"}, "horizontal_m = '150' is not a number"),
        ({"vertical_m": -1}, "vertical_m = -1 is not a number >= 0"),
        ({"lookahead_s": float("nan")}, "lookahead_s = nan"),
        ({"horizontal_m": 0}, "horizontal_m must be greater than 0"),
        ({"alerting_m": 5}, "need 1 <= M <= N"),
        ({"alerting_m": 0}, "need 1 <= M <= N"),
        ({"warning_early_alerting_s": 20}, "warning_early_alerting_s = 20.0 is below"),
    ],
)
def test_bad_values_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(SeparationConfigError, match=r"^where: ") as info:
        from_mapping(values, "where")
    assert message in str(info.value)


def test_the_filter_can_be_switched_off_with_zero_zero() -> None:
    assert from_mapping({"alerting_m": 0, "alerting_n": 0}, "t").alerting_n == 0


def test_accord_toml_separation_section(tmp_path: Path) -> None:
    path = tmp_path / "accord.toml"
    path.write_text("[separation]\nhorizontal_m = 300\nwarning_alerting_s = 20\n")
    config = load(path, environ={})
    assert config.separation.horizontal_m == 300.0
    assert config.separation.warning_alerting_s == 20.0
    assert load(None, environ={}).separation == SeparationConfig()


def test_accord_toml_separation_errors_name_the_file_and_section(tmp_path: Path) -> None:
    path = tmp_path / "accord.toml"
    path.write_text("[separation]\nhorizontal = 300\n")
    with pytest.raises(ConfigError, match=r"accord.toml: \[separation\]: unknown separation key"):
        load(path, environ={})
    path.write_text('separation = "wide"\n')
    with pytest.raises(ConfigError, match=r"is not a \[separation\] table"):
        load(path, environ={})
