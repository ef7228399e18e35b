"""Configuration: frozen, documented defaults; an optional TOML file; ACCORD_* environment.

Precedence: defaults < TOML file < environment (``ACCORD_TCP_PORT=…``) < command-line flags.
Every error names the key, the bad value and what would be accepted.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from accord.domain.partners import FEDERATION_V2_PORT, Partner, PartnerError, parse_partners
from accord.geo.config import SeparationConfig, SeparationConfigError
from accord.geo.config import from_mapping as separation_from_mapping


class ConfigError(Exception):
    """A configuration key or value is wrong; the message says which and how to fix it."""


log = logging.getLogger("accord.config")
ENV_PREFIX = "ACCORD_"
# Unknown ACCORD_* variables already warned about in this process (one warning each).
_warned_env: set[str] = set()


def nearest(key: str, known: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known key, or a pointer to the list."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return "; `accord config` lists every key"


FEED_KINDS = ("udp", "udpout", "tcp", "tlog", "serial")


@dataclass(frozen=True, slots=True)
class DroneFeed:
    """One ``[[drone_feeds]]`` table: a MAVLink source whose vehicles become tracks."""

    name: str  # in uids (<org>.<name>.<sysid>) and default callsigns
    kind: str  # udp (listen), udpout (send first to a vehicle/router), tcp (connect), tlog, serial
    address: str = ""  # host:port: to listen on (udp) or to reach (udpout, tcp)
    path: str = ""  # the .tlog file (tlog), the device (serial: /dev/ttyUSB0, /dev/serial/by-id/…)
    baud: int = 57600  # serial: the radio's or autopilot port's rate (SiK radios: 57600)
    org: str = "accord"
    affiliation: str = "f"  # f friend, n neutral, u unknown, h hostile, a assumed friend
    callsign: str = "{feed}-{sysid}"
    video_url: str = ""  # put in <__video url> (rtsp://, srt://, ...)
    groups: tuple[str, ...] = ("__ANON__",)
    speed: float = 1.0  # tlog replay speed
    rate_hz: float = 2.0  # events per vehicle and second, at most
    link_timeout_s: float = 3.0  # no HEARTBEAT this long: stale track and a link-lost alert


_FEED_TYPES: dict[str, type] = {
    "name": str, "kind": str, "address": str, "path": str, "org": str, "affiliation": str,
    "callsign": str, "video_url": str, "groups": tuple, "speed": float, "rate_hz": float,
    "link_timeout_s": float, "baud": int,
}  # fmt: skip


def parse_drone_feeds(raw: Any, source: str) -> tuple[DroneFeed, ...]:
    """The ``[[drone_feeds]]`` tables, checked; every error names the table and the key."""
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError(f"{source}: drone_feeds must be [[drone_feeds]] tables")
    feeds: list[DroneFeed] = []
    for index, table in enumerate(raw):
        where = f"{source}: drone_feeds[{index}]"
        unknown = set(table) - set(_FEED_TYPES)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: "
                f"{', '.join(_FEED_TYPES)}"
            )
        values: dict[str, Any] = {}
        for key, value in table.items():
            kind = _FEED_TYPES[key]
            if kind is tuple:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"{where}: {key} = {value!r} is not a list of strings")
                values[key] = tuple(value)
            elif kind is int:
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ConfigError(f"{where}: {key} = {value!r} is not a whole number > 0")
                values[key] = value
            elif kind is float:
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ConfigError(f"{where}: {key} = {value!r} is not a number > 0")
                values[key] = float(value)
            elif not isinstance(value, str):
                raise ConfigError(f"{where}: {key} = {value!r} is not a string")
            else:
                values[key] = value
        for key in ("name", "kind"):
            if not values.get(key):
                raise ConfigError(f"{where}: {key} is required")
        feed = DroneFeed(**values)
        if feed.kind not in FEED_KINDS:
            raise ConfigError(f"{where}: kind = {feed.kind!r}; use one of {', '.join(FEED_KINDS)}")
        if feed.kind == "tlog" and not feed.path:
            raise ConfigError(f'{where}: a tlog feed needs path = "file.tlog"')
        if feed.kind == "serial" and not feed.path:
            raise ConfigError(f'{where}: a serial feed needs path = "/dev/ttyUSB0" (the device)')
        if feed.kind not in ("tlog", "serial"):
            host, _, port = feed.address.rpartition(":")
            if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ConfigError(f"{where}: address = {feed.address!r} is not host:port")
        if feed.affiliation not in ("f", "a", "n", "u", "s", "h", "j", "k", "p", "o", "x"):
            raise ConfigError(f"{where}: affiliation = {feed.affiliation!r} is not a CoT one")
        if "." in feed.name or any(f.name == feed.name for f in feeds):
            raise ConfigError(f"{where}: name = {feed.name!r} must be unique and have no dot")
        feeds.append(feed)
    return tuple(feeds)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """``[cluster]``: NATS JetStream scale-out (issue 17); no urls = a single process."""

    urls: tuple[str, ...] = ()
    node: str = ""  # this node's name on the bus; empty = the first server_name
    org: str = "default"  # the organisation: its subjects and streams
    sa_replicas: int = 1  # copies of the latest-SA stream (3 on a 3-node cluster survives one)
    hub_domain: str = ""  # a base on a leaf NATS: the main cluster's JetStream domain

    @property
    def enabled(self) -> bool:
        return bool(self.urls)


def parse_cluster(raw: object, source: str) -> ClusterConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: cluster must be a [cluster] table (config file only)")
    unknown = set(raw) - {"urls", "node", "org", "sa_replicas", "hub_domain"}
    if unknown:
        raise ConfigError(f"{source}: [cluster] unknown key(s) {sorted(unknown)}")
    urls = raw.get("urls", [])
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not all(isinstance(u, str) and u for u in urls):
        raise ConfigError(f"{source}: [cluster] urls must be a list of nats:// URLs")
    node, org, replicas = raw.get("node", ""), raw.get("org", "default"), raw.get("sa_replicas", 1)
    if not isinstance(node, str) or not isinstance(org, str) or not org:
        raise ConfigError(f"{source}: [cluster] node and org must be strings (org non-empty)")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 5:
        raise ConfigError(f"{source}: [cluster] sa_replicas must be 1 to 5")
    hub_domain = raw.get("hub_domain", "")
    if not isinstance(hub_domain, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", hub_domain):
        raise ConfigError(
            f"{source}: [cluster] hub_domain must be a JetStream domain name "
            "(letters, digits, _ and -)"
        )
    return ClusterConfig(tuple(urls), node, org, replicas, hub_domain)


@dataclass(frozen=True, slots=True)
class Config:
    # -- where and what to listen on ---------------------------------------------------------
    data_dir: Path = field(default=Path("accord-data"), metadata={"doc": "state: CA, certs"})
    bind: str = field(default="127.0.0.1", metadata={"doc": "address to listen on (loopback)"})
    tcp_port: int = field(default=8087, metadata={"doc": "plain TCP streaming; 0 = off"})
    tls_port: int = field(default=8089, metadata={"doc": "TLS streaming, client cert; 0 = off"})
    udp_port: int = field(default=6969, metadata={"doc": "UDP input (XML or mesh); 0 = off"})
    https_port: int = field(
        default=8443, metadata={"doc": "Marti HTTPS API, client certificate required; 0 = off"}
    )
    http_port: int = field(
        default=0,
        metadata={"doc": "Marti plain HTTP, basic auth or anonymous (TAK's is 8080); 0 = off"},
    )
    enroll_port: int = field(
        default=8446, metadata={"doc": "certificate enrollment HTTPS (basic auth); 0 = off"}
    )
    udp_multicast_group: str = field(
        default="", metadata={"doc": "join this group on the UDP port, e.g. 239.2.3.1"}
    )
    server_names: tuple[str, ...] = field(
        default=("localhost", "127.0.0.1"),
        metadata={"doc": "names/IPs in the server certificate (first = CN)"},
    )
    # -- groups ------------------------------------------------------------------------------
    tcp_groups: tuple[str, ...] = field(default=("__ANON__",), metadata={"doc": "TCP groups"})
    udp_groups: tuple[str, ...] = field(default=("__ANON__",), metadata={"doc": "UDP groups"})
    tls_default_groups: tuple[str, ...] = field(
        default=("__ANON__",), metadata={"doc": "TLS groups when neither OU nor file says"}
    )
    groups_file: str = field(default="", metadata={"doc": "TOML file: CN -> groups"})
    # -- protocol ----------------------------------------------------------------------------
    tls_negotiate: bool = field(default=True, metadata={"doc": "offer TAK protocol v1 on TLS"})
    tcp_auth: bool = field(
        default=False,
        metadata={"doc": "TCP clients must sign in with <auth> (user name, password) first"},
    )
    tcp_negotiate: bool = field(default=False, metadata={"doc": "offer v1 on TCP (stcp: no)"})
    max_event_bytes: int = field(
        default=8 * 1024 * 1024, metadata={"doc": "largest event, bytes (TAK Server: 8 MiB)"}
    )
    max_depth: int = field(default=32, metadata={"doc": "deepest <detail> nesting"})
    # -- limits and flow control -------------------------------------------------------------
    max_connections: int = field(default=20000, metadata={"doc": "streaming sessions at once"})
    send_queue_events: int = field(
        default=1000, metadata={"doc": "events queued per blocked session before dropping"}
    )
    blocked_timeout_s: float = field(
        default=30.0, metadata={"doc": "close a session whose socket stays full this long"}
    )
    write_buffer_bytes: int = field(
        default=256 * 1024, metadata={"doc": "socket buffer above which a session is blocked"}
    )
    # Above what a feeder sends, so that gateways' bursts arrive (issue 12 §1); fairness between
    # sessions is kept per loop turn, this only stops abuse.
    input_rate: float = field(
        default=500.0, metadata={"doc": "events/s accepted per session; 0 = unlimited"}
    )
    input_burst: float = field(
        default=5000.0, metadata={"doc": "events a session may send at once above input_rate"}
    )
    tls_handshake_timeout_s: float = field(default=15.0, metadata={"doc": "TLS handshake"})
    http_header_timeout_s: float = field(
        default=10.0, metadata={"doc": "HTTP: a request's headers must arrive within this"}
    )
    http_body_timeout_s: float = field(
        default=30.0, metadata={"doc": "HTTP: close a request whose body pauses this long"}
    )
    revocation_check_s: float = field(
        default=5.0, metadata={"doc": "how often a running server looks for new revocations"}
    )
    # -- storage -----------------------------------------------------------------------------
    database_url: str = field(
        default="",
        metadata={"doc": "empty = SQLite in the data directory; or postgresql://user@host/db"},
    )
    max_package_bytes: int = field(
        default=400 * 1024 * 1024,
        metadata={"doc": "largest data package accepted, bytes (413 beyond; TAK Server: 400 MB)"},
    )
    archive: bool = field(default=True, metadata={"doc": "keep a history of routed events"})
    archive_skip_types: tuple[str, ...] = field(
        default=(), metadata={"doc": "event type prefixes kept out of the history (high rate)"}
    )
    history_max_age_days: float = field(
        default=30.0, metadata={"doc": "delete history older than this; 0 = keep forever"}
    )
    history_max_events: int = field(
        default=10_000_000, metadata={"doc": "keep at most this many history events"}
    )
    archive_queue_events: int = field(
        default=100_000,
        metadata={"doc": "events waiting for the store before new ones skip the history"},
    )
    # -- federation --------------------------------------------------------------------------
    federation_port: int = field(
        default=FEDERATION_V2_PORT,
        metadata={
            "doc": "partner links in (TAK Server federation v2, gRPC over mutual TLS; TAK's is "
            "9001); listened on only when a partner is configured; 0 = off"
        },
    )
    federation_files_port: int = field(
        default=9002,
        metadata={
            "doc": "partners fetch the data packages announced to them (b-f-t-r) here: HTTPS "
            "with their federation certificate, only what their release policy let through; "
            "listened on only when a partner is configured; 0 = off (files are not shared)"
        },
    )
    federation_outbox_events: int = field(
        default=100_000,
        metadata={
            "doc": "per partner link: released events kept until the partner acknowledges them "
            "(store and forward while the link is down); beyond it the oldest are dropped and "
            "recorded in the ledger as dropped"
        },
    )
    federation_name: str = field(
        default="", metadata={"doc": "this server's name to partners; empty = first server_name"}
    )
    partners: tuple[Partner, ...] = field(
        default=(),
        metadata={
            "doc": "[[partners]] tables: name, ca_sha256, ca_file, address, groups_in, "
            "groups_out, callsign_prefix, share_all, policy_file; added to "
            "<data_dir>/partners.toml (`accord partner add`)"
        },
    )
    # -- web app (/web/ on https_port and enroll_port) -----------------------------------------
    web_basemap: str = field(
        default="",
        metadata={
            "doc": "an operator's PMTiles (vector) or MBTiles file drawn over the built-in "
            "world map for detail; empty = the world map only"
        },
    )
    web_tiles_url: str = field(
        default="",
        metadata={"doc": "an XYZ raster tile URL template ({z}/{x}/{y}) drawn over the world map"},
    )
    web_queue_items: int = field(
        default=20000,
        metadata={
            "doc": "items waiting per web session (a uid's positions coalesce); more is dropped"
        },
    )
    web_compress: bool = field(
        default=False,
        metadata={
            "doc": "permessage-deflate on the web feed when the browser offers it: ~20x fewer "
            "bytes, for about as much server CPU again per browser as the feed costs without"
        },
    )
    # -- administration and monitoring -------------------------------------------------------
    admin_users: tuple[str, ...] = field(
        default=("admin",),
        metadata={
            "doc": "client-certificate CNs allowed the admin API (/api/admin) and /metrics on "
            "https_port; at start the server issues <data_dir>/pki/admin.pem for the first one, "
            "which `accord status` uses; empty = no admin API"
        },
    )
    metrics_port: int = field(
        default=0,
        metadata={
            "doc": "plain-HTTP /metrics (Prometheus text) on 127.0.0.1 only, no sign-in, for a "
            "Prometheus on this host; 0 = off (9464 is customary); a remote Prometheus scrapes "
            "https_port/metrics with an admin certificate (tls_config cert_file/key_file)"
        },
    )
    # -- drones ------------------------------------------------------------------------------
    drone_feeds: tuple[DroneFeed, ...] = field(
        default=(),
        metadata={"doc": "MAVLink sources bridged to tracks: [[drone_feeds]] tables (TOML only)"},
    )
    drone_port: int = field(
        default=14550,
        metadata={
            "doc": "when no [[drone_feeds]] are configured, listen for MAVLink on this UDP port "
            "of the bind address (the ground-station port autopilots and `accord drone "
            "simulate` send to; skipped with a warning if busy); 0 = off"
        },
    )
    # -- separation alerts -------------------------------------------------------------------
    separation: SeparationConfig = field(
        default_factory=SeparationConfig,
        metadata={
            "doc": "[separation] table: cylinder horizontal_m/vertical_m, lookahead_s, each "
            "level's alerting and early alerting time, alerting_m/n, hysteresis_s, "
            "persistence_s, k_sigma, ... (TOML only; defaults = the DAIDALUS corpus uas.conf)"
        },
    )
    geofence_files: tuple[str, ...] = field(
        default=(),
        metadata={
            "doc": "GeoJSON FeatureCollections of agreed zones (Polygon features; properties "
            "name, trigger entry/exit/both, min_alt_m/max_alt_m hae, start/end ISO times); "
            "re-read on SIGHUP"
        },
    )
    # -- scale-out ---------------------------------------------------------------------------
    cluster: ClusterConfig = field(
        default_factory=ClusterConfig,
        metadata={
            "doc": "[cluster] table: urls (NATS servers), node (this node's name), org, "
            "sa_replicas, hub_domain (a base on a leaf NATS: the main cluster's JetStream domain) "
            "(TOML only; no urls = one process, no NATS)"
        },
    )
    # -- memory ------------------------------------------------------------------------------
    allocator: str = field(
        default="malloc",
        metadata={
            "doc": "malloc: `accord serve` runs Python on the C allocator (PYTHONMALLOC=malloc, "
            "glibc only), whose free pages go back to the system after a storm; pymalloc: "
            "Python's own, a little faster, but it keeps a 1 MiB arena while any object in it "
            "lives (RSS stayed ~+30 % after a 5x overload, issue 13 §2). PYTHONMALLOC set "
            "in the environment wins"
        },
    )
    # -- logs --------------------------------------------------------------------------------
    log_level: str = field(default="info", metadata={"doc": "debug, info, warning, error"})
    log_json: bool = field(default=False, metadata={"doc": "one JSON object per log line"})


_LOG_LEVELS = ("debug", "info", "warning", "error")
_ALLOCATORS = ("malloc", "pymalloc")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def keys() -> list[str]:
    return [f.name for f in fields(Config)]


def _convert(key: str, raw: Any, kind: Any, source: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {key} = {raw!r} is not {expected}")

    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return raw.lower() in ("1", "true", "yes", "on")
        raise bad("a boolean (true/false)")
    if kind is int:
        if isinstance(raw, bool):
            raise bad("an integer")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise bad("an integer") from None
    if kind is float:
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise bad("a number") from None
    if kind is Path:
        if not isinstance(raw, str | Path):
            raise bad("a path")
        return Path(raw)
    if kind == tuple[DroneFeed, ...]:
        if source.startswith("environment"):
            raise ConfigError(f"{source}: {key} can only be set in the TOML file")
        return parse_drone_feeds(raw, source)
    if kind == tuple[Partner, ...]:
        if not isinstance(raw, list):
            raise bad("a list of [[partners]] tables (config file only)")
        try:
            return parse_partners(raw, source)
        except PartnerError as exc:
            raise ConfigError(str(exc)) from None
    if kind is ClusterConfig:
        return parse_cluster(raw, source)
    if kind is SeparationConfig:
        if not isinstance(raw, dict):
            raise bad("a [separation] table (config file only)")
        try:
            return separation_from_mapping(raw, f"{source}: [separation]")
        except SeparationConfigError as exc:
            raise ConfigError(str(exc)) from None
    if kind == tuple[str, ...]:
        if isinstance(raw, str):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
            return tuple(raw)
        raise bad("a list of strings")
    if not isinstance(raw, str):
        raise bad("a string")
    return raw


def _apply(base: Config, values: Mapping[str, Any], source: str) -> Config:
    hints = get_type_hints(Config)
    known = set(keys())
    changes: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key {key!r}{nearest(key, sorted(known))}")
        changes[key] = _convert(key, raw, hints[key], source)
    return dataclasses.replace(base, **changes)


def _known_env(values: dict[str, str], strict: bool) -> dict[str, str]:
    known = keys()
    unknown = sorted(k for k in values if k not in known)
    if not unknown:
        return values
    if strict:
        key = unknown[0]
        raise ConfigError(
            f"environment: {ENV_PREFIX}{key.upper()} names no configuration key"
            f"{nearest(key, known)} (without --strict it is ignored with a warning)"
        )
    for key in unknown:
        name = f"{ENV_PREFIX}{key.upper()}"
        if name not in _warned_env:
            _warned_env.add(name)
            log.warning("ignoring %s: it names no configuration key%s", name, nearest(key, known))
    return {k: v for k, v in values.items() if k not in unknown}


def validate(config: Config) -> Config:
    ports = (
        "tcp_port",
        "tls_port",
        "udp_port",
        "enroll_port",
        "https_port",
        "http_port",
        "drone_port",
    )
    for key in (*ports, "metrics_port", "federation_port", "federation_files_port"):
        port = getattr(config, key)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{key} = {port} is not a port number (0-65535; 0 = off)")
    positive = (
        "max_event_bytes",
        "max_depth",
        "max_connections",
        "send_queue_events",
        "web_queue_items",
        "max_package_bytes",
        "history_max_events",
        "archive_queue_events",
    )
    for key in positive:
        if getattr(config, key) <= 0:
            raise ConfigError(f"{key} = {getattr(config, key)} must be greater than 0")
    if (
        min(
            config.blocked_timeout_s,
            config.tls_handshake_timeout_s,
            config.revocation_check_s,
            config.http_header_timeout_s,
            config.http_body_timeout_s,
        )
        <= 0
    ):
        raise ConfigError("timeouts must be greater than 0 seconds")
    if config.input_rate < 0 or config.input_burst < 1:
        raise ConfigError("input_rate must be >= 0 (0 = unlimited) and input_burst >= 1")
    if config.history_max_age_days < 0:
        raise ConfigError("history_max_age_days must be >= 0 (0 = keep forever)")
    if config.log_level.lower() not in _LOG_LEVELS:
        raise ConfigError(f"log_level = {config.log_level!r}; use one of {', '.join(_LOG_LEVELS)}")
    if not config.server_names:
        raise ConfigError("server_names must name at least one host")
    if config.allocator not in _ALLOCATORS:
        raise ConfigError(f"allocator = {config.allocator!r}; use one of {', '.join(_ALLOCATORS)}")
    return config


def load(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    strict: bool = False,
) -> Config:
    """Build the configuration from its four layers. An ``ACCORD_*`` variable that names no
    key is warned about (once) and ignored, as a shell or another tool may set one; with
    ``strict`` it is an error, as an unknown key in the file always is."""
    config = Config()
    if path is not None:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        config = _apply(config, data, str(path))
    env = os.environ if environ is None else environ
    from_env = {
        name[len(ENV_PREFIX) :].lower(): value
        for name, value in env.items()
        if name.startswith(ENV_PREFIX)
    }
    from_env = _known_env(from_env, strict)
    config = _apply(config, from_env, "environment (ACCORD_*)")
    if overrides:
        config = _apply(config, {k: v for k, v in overrides.items() if v is not None}, "flag")
    return validate(config)
