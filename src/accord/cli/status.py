"""``accord status``: what a running server is doing, from its admin API on this host.

It dials the HTTPS port the server on that data directory wrote into its ``running.json``
(else the configured one), signs in with the admin certificate the server keeps in
``<data_dir>/pki/admin.pem`` and trusts only that data directory's CA (the server's
certificate names need not include 127.0.0.1: any certificate from our own CA is our server).
The admin certificate is sent only after the server's chain has been verified (TLS 1.2 and 1.3
both send the client certificate after the server's), so a server from another CA that
happens to listen there never sees it: it is refused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TextIO

from accord.app.running import dial_host
from accord.config import Config
from accord.identity.ca import PkiPaths

EXIT_DOWN = 1  # nothing answers, or it refused us
EXIT_USAGE = 2


class StatusError(Exception):
    """What went wrong, said so that the operator knows what to do; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_DOWN) -> None:
        super().__init__(message)
        self.code = code


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "status",
        parents=[common],
        help="what the running server is doing: listeners, traffic, clients",
    )
    p.add_argument(
        "--url",
        help="its HTTPS API (default: the port in <data_dir>/running.json, else https_port)",
    )
    p.add_argument("--json", action="store_true", help="print the status and clients as JSON")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")


def run(args: argparse.Namespace, config: Config) -> int:
    try:
        url = base_url(args.url, config)
        status, clients = _fetch(url, PkiPaths(config.data_dir / "pki"), args.timeout)
    except StatusError as exc:
        print(f"accord: {exc}", file=sys.stderr)
        return exc.code
    if args.json:
        json.dump({**status, "clients": clients}, sys.stdout, indent=2)
        print()
    else:
        render(status, clients, sys.stdout)
    return 0


def base_url(url: str | None, config: Config) -> str:
    if url:
        return url.rstrip("/")
    if not config.https_port:
        raise StatusError(
            "the HTTPS API is off in this configuration (https_port = 0); `accord status` "
            "reads it: turn it on, or give --url",
            EXIT_USAGE,
        )
    # The config's port is that of the server running on this data directory when it wrote
    # its running.json (see accord.cli.datadir.with_running).
    return f"https://{dial_host(config.bind)}:{config.https_port}"


def _answering(url: str, timeout: float) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 443), timeout):
            return True
    except OSError:
        return False


def _fetch(url: str, pki: PkiPaths, timeout: float) -> tuple[dict[str, Any], list[Any]]:
    ctx = admin_context(url, pki, timeout)
    status = admin_request(url, "/api/admin/status", ctx, timeout, pki)[1]
    clients = admin_request(url, "/api/admin/clients", ctx, timeout, pki)[1]
    return status, clients.get("clients", [])


def admin_context(url: str, pki: PkiPaths, timeout: float) -> ssl.SSLContext:
    """TLS with the admin certificate, trusting only this data directory's CA."""
    down = f"no Accord answering on {url}: start it with `accord serve`"
    if not pki.admin_cert.exists() or not pki.admin_key.exists():
        if not _answering(url, timeout):
            raise StatusError(down)
        raise StatusError(
            f"no admin certificate in {pki.root} (admin.pem, admin.key): the server issues "
            "it when it starts with the HTTPS API on; give --data-dir (or --config) as the "
            "server has it",
            EXIT_USAGE,
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the chain must still lead to our own CA
    try:
        ctx.load_verify_locations(cafile=pki.ca_cert)
        ctx.load_cert_chain(pki.admin_cert, pki.admin_key)
    except (OSError, ssl.SSLError) as exc:
        raise StatusError(f"cannot use the admin certificate in {pki.root}: {exc}") from None
    return ctx


def admin_request(
    url: str,
    path: str,
    ctx: ssl.SSLContext,
    timeout: float,
    pki: PkiPaths,
    *,
    method: str = "GET",
    body: dict[str, Any] | None = None,
    answers: tuple[int, ...] = (),
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of an admin API call; errors other than ``answers`` raise
    :class:`StatusError` with what to do."""
    down = f"no Accord answering on {url}: start it with `accord serve`"
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=timeout) as answer:
            result: dict[str, Any] = json.load(answer)
            return answer.status, result
    except urllib.error.HTTPError as exc:
        try:
            said_json = json.loads(exc.read())
            said = said_json.get("error", "")
        except (ValueError, AttributeError):
            said_json, said = {}, ""
        if exc.code in answers:
            return exc.code, said_json if isinstance(said_json, dict) else {}
        if exc.code in (401, 403):
            raise StatusError(
                f"{url} refused the admin certificate ({exc.code}: {said}); check admin_users, "
                "or restart `accord serve` to have a new admin.pem issued"
            ) from None
        if exc.code == 404:
            raise StatusError(f"{url} has no admin API ({path} not found): is it Accord?") from None
        raise StatusError(f"{url}{path} answered {exc.code} {said}".rstrip()) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise StatusError(
                f"the server on {url} is not the one of {pki.root.parent} (its certificate is "
                f"not from {pki.ca_cert}; the admin certificate was not presented to it): give "
                "the --data-dir it runs with"
            ) from None
        if isinstance(reason, ssl.SSLError):
            raise StatusError(
                f"{url} refused the admin certificate ({reason.reason or reason}); restart "
                "`accord serve` to have a new admin.pem issued"
            ) from None
        if isinstance(reason, TimeoutError):
            raise StatusError(f"{url} did not answer within {timeout:g} s") from None
        raise StatusError(down) from None
    except TimeoutError:
        raise StatusError(f"{url} did not answer within {timeout:g} s") from None
    except (ConnectionError, ValueError) as exc:
        raise StatusError(f"{url}{path}: bad answer ({exc})") from None


# -- the terminal summary -------------------------------------------------------------------------
def _n(value: int) -> str:
    return f"{value:,}"


def _duration(seconds: float) -> str:
    s = int(max(seconds, 0))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {s:02d}s"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _drops(drops: dict[str, int]) -> int:
    return sum(drops.values())


def _device(device: dict[str, str]) -> str:
    what = " ".join(v for v in (device.get("platform"), device.get("version")) if v)
    if device.get("device"):
        what = f"{what} ({device['device']})" if what else device["device"]
    return what or "-"


def render(status: dict[str, Any], clients: list[dict[str, Any]], out: TextIO) -> None:
    started = _when(status["started_at"])
    assert started is not None
    now = started + dt.timedelta(seconds=status["uptime_s"])  # the server's clock
    listeners = status["listeners"]
    totals = {key: sum(item[key] for item in listeners) for key in ("events_in", "events_out")}
    drops: dict[str, int] = {}
    malformed: dict[str, int] = {}
    for item in listeners:
        for key, value in item["drops"].items():
            drops[key] = drops.get(key, 0) + value
        for key, value in item["malformed"].items():
            malformed[key] = malformed.get(key, 0) + value
    ports = ", ".join(f"{name} {port}" for name, port in status["ports"].items())
    per_listener = ", ".join(
        f"{i['name']} {i['sessions']}" for i in listeners if i["name"] != "udp"
    )
    why = ", ".join(f"{k} {v}" for k, v in sorted(malformed.items()) if v)
    queues = status["queues"]
    lines = [
        f"Accord {status['version']} on {status['bind']}, up {_duration(status['uptime_s'])} "
        f"(since {started:%Y-%m-%d %H:%M:%S} UTC)",
        f"listening  {ports or '-'}",
        f"sessions   {status['sessions']}" + (f" ({per_listener})" if per_listener else ""),
        f"events     in {_n(totals['events_in'])}, out {_n(totals['events_out'])}",
        f"drops      malformed {_n(drops.get('malformed', 0))}"
        + (f" ({why})" if why else "")
        + f", rate limited {_n(drops.get('rate_limited', 0))}"
        + f", queue full {_n(drops.get('queue_full', 0))}",
        f"queues     {_n(queues['queued_events'])} events waiting"
        f" (fullest {_n(queues['max_queued_events'])}),"
        f" {_n(queues['write_buffer_bytes'])} bytes unsent",
        "history    " + _history(status),
        *_drones(status),
        *_coordination(status),
        *_partners(status),
        "",
    ]
    out.write("\n".join(lines) + "\n")
    if not clients:
        out.write("no clients connected\n")
        return
    header = ("CALLSIGN", "UID", "USER", "GROUPS", "ADDRESS", "VIA", "DEVICE", "SINCE", "LAST")
    rows = [header]
    for c in clients:
        since = _when(c["connected_at"])
        last = _when(c["last_event_at"])
        groups = sorted(set(c["groups"]["in"]) | set(c["groups"]["out"]))
        rows.append(
            (
                c["callsign"] or "-",
                c["uid"] or "-",
                c["user"] or "-",
                ",".join(groups) or "-",
                c["address"],
                c["listener"] + ("/pb" if c["wire_format"] == "protobuf" else ""),
                _device(c["device"]),
                f"{since:%H:%M:%S}"
                if since and now - since < dt.timedelta(days=1)
                else (f"{since:%Y-%m-%d}" if since else "-"),
                f"{_duration((now - last).total_seconds())} ago" if last else "-",
            )
        )
    numbers = [("IN", "OUT", "DROPS")] + [
        (_n(c["events_in"]), _n(c["events_out"]), _n(_drops(c["drops"]))) for c in clients
    ]
    widths = [min(max(len(r[i]) for r in rows), 36) for i in range(len(header))]
    nwidths = [max(len(r[i]) for r in numbers) for i in range(3)]
    for row, nums in zip(rows, numbers, strict=True):
        text = "  ".join(_cut(v, w).ljust(w) for v, w in zip(row, widths, strict=True))
        text += "  " + "  ".join(v.rjust(w) for v, w in zip(nums, nwidths, strict=True))
        out.write(text.rstrip() + "\n")


def _cut(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def _drones(status: dict[str, Any]) -> list[str]:
    lines = []
    for index, feed in enumerate(status.get("drone_feeds") or []):
        c = feed["counters"]
        bad = c.get("bad_data", 0) + c.get("truncated", 0)
        lines.append(
            ("drones     " if index == 0 else "           ")
            + f"{feed['name']} ({feed['kind']}): {feed['vehicles_live']}/{feed['vehicles']} "
            f"vehicles live, {_n(c.get('messages', 0))} messages, {_n(bad)} bad, "
            f"{_n(c.get('unknown', 0))} unknown, {_n(c.get('conflicts', 0))} conflicts, "
            f"{_n(c.get('events', 0))} events, {_n(c.get('links_lost', 0))} links lost"
        )
    return lines


def _coordination(status: dict[str, Any]) -> list[str]:
    c = status.get("coordination") or {}
    if not c:
        return []

    def n(key: str) -> str:
        return _n(int(c.get(key, 0)))

    raised = ", ".join(
        f"{level} {n('separation_alerts_raised_total{level=' + level + '}')}"
        for level in ("caution", "warning", "loss")
    )
    dropped = sum(int(v) for k, v in c.items() if k.startswith("separation_tracks_dropped"))
    return [
        f"separation {n('separation_tracks')} airborne tracks, "
        f"{n('separation_alerts_active')} alerts shown (raised: {raised}; "
        f"{n('separation_alerts_cleared_total')} cleared), {_n(dropped)} bad tracks dropped",
        f"geofences  {n('geofences')} in force, {n('geofence_breaches_total')} breaches; "
        f"intents {n('flight_intents')}, {n('flight_intent_conflicts_total')} conflicts, "
        f"{n('tracks_nonconforming')} drones off their mission",
    ]


def _partners(status: dict[str, Any]) -> list[str]:
    lines = []
    for index, link in enumerate(status.get("federation") or []):
        error = f", last error: {link['last_error']}" if link.get("last_error") else ""
        speaks = ", ".join(link.get("extensions") or []) or "plain federation v2"
        lines.append(
            ("partners   " if index == 0 else "           ")
            + f"{link['partner']} ({link['direction']}): {link['state']} since {link['since']}, "
            f"in {_n(link['events_in'])}, out {_n(link['events_out'])}, "
            f"withheld {_n(link['withheld'])}, dropped {_n(link['dropped'])} "
            f"({speaks}){error}"
        )
    return lines


def _history(status: dict[str, Any]) -> str:
    store = status.get("store")
    backlog = status.get("history_backlog") or {}
    if store is None:
        text = "no store"
    elif "error" in store:
        text = f"{store['backend']}: {store['error']}"
    else:
        text = f"{store['backend']}, {_n(store['history_events'])} events"
    if backlog.get("queued_events"):
        text += f", {_n(backlog['queued_events'])} waiting ({backlog['lag_s']:.1f} s behind)"
    return text
