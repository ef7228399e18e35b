"""Configuration layers: defaults < TOML < ACCORD_* environment < flags, with clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from accord.config import Config, ConfigError, keys, load


def test_defaults_need_no_file_and_listen_on_loopback() -> None:
    config = load(environ={})
    assert config == Config()
    assert config.bind == "127.0.0.1"
    assert (config.tcp_port, config.tls_port, config.udp_port) == (8087, 8089, 6969)
    assert config.max_event_bytes == 8 * 1024 * 1024


def test_layers_apply_in_order(tmp_path: Path) -> None:
    path = tmp_path / "accord.toml"
    path.write_text('tcp_port = 1000\ntls_port = 2000\nudp_port = 3000\ntcp_groups = ["A", "B"]\n')
    env = {"ACCORD_TLS_PORT": "2001", "ACCORD_UDP_PORT": "3001"}
    config = load(path, environ=env, overrides={"udp_port": 3002, "bind": None})
    assert (config.tcp_port, config.tls_port, config.udp_port) == (1000, 2001, 3002)
    assert config.tcp_groups == ("A", "B")
    assert config.bind == "127.0.0.1"  # a flag left unset does not override


def test_environment_values_are_typed() -> None:
    config = load(
        environ={
            "ACCORD_LOG_JSON": "yes",
            "ACCORD_INPUT_RATE": "12.5",
            "ACCORD_TCP_GROUPS": "Blue, Red",
            "ACCORD_DATA_DIR": "/srv/accord",
        }
    )
    assert config.log_json is True
    assert config.input_rate == 12.5
    assert config.tcp_groups == ("Blue", "Red")
    assert config.data_dir == Path("/srv/accord")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tcp_prot = 1\n", "unknown key 'tcp_prot'"),
        ('tcp_port = "x"\n', "tcp_port = 'x' is not an integer"),
        ("tcp_port = 70000\n", "tcp_port = 70000 is not a port number"),
        ("log_json = 3\n", "is not a boolean"),
        ('log_level = "loud"\n', "log_level = 'loud'"),
        ("max_connections = 0\n", "max_connections = 0 must be greater than 0"),
        ("tcp_groups = [1]\n", "is not a list of strings"),
        ("tcp_port = \n", "is not valid TOML"),
    ],
)
def test_bad_file_names_the_key_and_what_is_expected(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "accord.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load(path, environ={})


def test_unknown_environment_key_is_an_error_when_strict_naming_the_nearest() -> None:
    with pytest.raises(ConfigError, match=r"ACCORD_TLS_PROT names no .* did you mean 'tls_port'"):
        load(environ={"ACCORD_TLS_PROT": "1"}, strict=True)


def test_unknown_environment_key_is_warned_about_once_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = {"ACCORD_BIN": "/opt/accord/bin", "ACCORD_TCP_PORT": "9001"}
    with caplog.at_level(logging.WARNING, logger="accord.config"):
        config = load(environ=environ)
        again = load(environ=environ)
    assert config.tcp_port == again.tcp_port == 9001  # the known variable still applies
    warnings = [r.getMessage() for r in caplog.records if "ACCORD_BIN" in r.getMessage()]
    assert warnings == ["ignoring ACCORD_BIN: it names no configuration key; did you mean 'bind'?"]


def test_unknown_file_key_suggests_the_nearest_instead_of_listing_every_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accord.toml"
    path.write_text("histroy_max_events = 5\n")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    message = str(caught.value)
    assert message.endswith("unknown key 'histroy_max_events'; did you mean 'history_max_events'?")
    assert "tcp_port" not in message  # not the list of every key


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path / "nope.toml", environ={})


def test_every_key_is_documented() -> None:
    from dataclasses import fields

    assert all(f.metadata.get("doc") for f in fields(Config))
    assert len(keys()) == len(fields(Config))


def test_drone_feeds_are_read_from_toml_tables(tmp_path: Path) -> None:
    path = tmp_path / "accord.toml"
    path.write_text(
        '[[drone_feeds]]\nname = "sim"\nkind = "udp"\naddress = "0.0.0.0:14550"\n'
        'groups = ["drones"]\nvideo_url = "rtsp://cam/1"\n'
        '[[drone_feeds]]\nname = "log"\nkind = "tlog"\npath = "flight.tlog"\nspeed = 10\n'
    )
    feeds = load(path, environ={}).drone_feeds
    assert [(f.name, f.kind, f.groups) for f in feeds] == [
        ("sim", "udp", ("drones",)),
        ("log", "tlog", ("__ANON__",)),
    ]
    assert feeds[1].speed == 10.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('name = "a"\nkind = "can"\naddress = "x:1"', "kind = 'can'"),
        ('name = "a"\nkind = "serial"', "serial feed needs path"),
        ('name = "a"\nkind = "udp"\naddress = "14550"', "not host:port"),
        ('name = "a"\nkind = "tlog"', "needs path"),
        ('kind = "udp"\naddress = "h:1"', "name is required"),
        ('name = "a"\nkind = "udp"\naddress = "h:1"\nport = 3', "unknown key(s) port"),
        ('name = "a"\nkind = "tlog"\npath = "f"\nspeed = -1', "speed = -1 is not a number > 0"),
    ],
)
def test_bad_drone_feeds_name_the_table_and_the_key(
    tmp_path: Path, table: str, message: str
) -> None:
    path = tmp_path / "accord.toml"
    path.write_text(f"[[drone_feeds]]\n{table}\n")
    with pytest.raises(ConfigError, match=r"drone_feeds\[0\]") as info:
        load(path, environ={})
    assert message in str(info.value)


def test_cli_goes_on_past_an_unrelated_accord_variable_unless_strict(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from accord.cli import main

    monkeypatch.setenv("ACCORD_TOOLCHAIN_ROOT", "/opt/toolchain")  # set by some other tool
    assert main(["config"]) == 0
    assert "tcp_port = 8087" in capsys.readouterr().out
    assert main(["--strict", "config"]) == 2
    error = capsys.readouterr().err
    assert "ACCORD_TOOLCHAIN_ROOT names no configuration key" in error
    assert error.count("\n") == 1
