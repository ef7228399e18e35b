"""``accord`` command line: ``serve``, ``status``, ``history``, ``drone``, ``policy``, ``cert``…"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from accord import __version__
from accord.app import ServerFailed, StartupError, serve
from accord.cli import (
    cert,
    cluster,
    datadir,
    demo,
    drone,
    history,
    ledger,
    mission,
    package,
    partner,
    policy,
    qr,
    separation,
    status,
    user,
)
from accord.config import Config, ConfigError, load
from accord.identity.ca import PkiError
from accord.identity.users import UserError
from accord.server.memory import allocator_restart

EXIT_USAGE = 2
EXIT_FAILED = 1  # the server ran and a background task whose death stops it died


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str, as_json: bool, prefix: str = "") -> None:
    """``prefix``: before each text line's logger name (a worker's ``w1 ``)."""
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


MAX_WORKERS = 64


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_WORKERS}, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accord", description="Accord TAK-compatible server")
    parser.add_argument("--version", action="version", version=f"accord {__version__}")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="an ACCORD_* environment variable that names no key is an error, not a warning",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve_p = sub.add_parser("serve", help="run the server (defaults need no config file)")
    serve_p.add_argument("--config", type=Path, help="TOML configuration file")
    serve_p.add_argument("--data-dir", type=Path, help="state directory (default ./accord-data)")
    serve_p.add_argument("--bind", help="address to listen on (default 127.0.0.1)")
    serve_p.add_argument("--tcp-port", type=int, help="plain TCP streaming (8087; 0 = off)")
    serve_p.add_argument("--tls-port", type=int, help="TLS streaming (8089; 0 = off)")
    serve_p.add_argument("--udp-port", type=int, help="UDP input (6969; 0 = off)")
    serve_p.add_argument("--enroll-port", type=int, help="certificate enrollment (8446; 0 = off)")
    serve_p.add_argument("--https-port", type=int, help="Marti HTTPS API (8443; 0 = off)")
    serve_p.add_argument(
        "--http-port", type=int, help="Marti plain HTTP, basic auth (e.g. 8080; default off)"
    )
    serve_p.add_argument(
        "--metrics-port", type=int, help="plain-HTTP /metrics on 127.0.0.1 (default 0 = off)"
    )
    serve_p.add_argument(
        "--drone-port", type=int, help="MAVLink UDP when no [[drone_feeds]] (14550; 0 = off)"
    )
    serve_p.add_argument(
        "--federation-port", type=int, help="partner links in, once a partner is added (9001)"
    )
    serve_p.add_argument(
        "--federation-files-port",
        type=int,
        help="partners fetch shared packages here, once a partner is added (9002; 0 = off)",
    )
    serve_p.add_argument(
        "--server-names",
        help="comma-separated names/IPs devices and partners dial, first = CN "
        "(default localhost,127.0.0.1; for a new CA's server certificate)",
    )
    serve_p.add_argument(
        "--federation-name", help="this server's name to partners (default: first server name)"
    )
    serve_p.add_argument(
        "--database-url", help="postgresql://user@host/db (default: SQLite in the data dir)"
    )
    serve_p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve_p.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")
    serve_p.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="processes sharing the streaming ports, joined by an embedded NATS server "
        "(default 1: one process, no NATS)",
    )

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help="state directory (default ./accord-data)")
    common.add_argument("--config", type=Path, help="TOML configuration file")
    cert.add_parser(sub, common)
    package.add_parser(sub, common)
    user.add_parser(sub, common)
    qr.add_parser(sub, common)
    history.add_parser(sub, common)
    ledger.add_parser(sub, common)
    mission.add_parser(sub, common)
    status.add_parser(sub, common)
    cluster.add_parser(sub, common)
    drone.add_parser(sub, common)
    policy.add_parser(sub)
    separation.add_parser(sub)
    partner.add_parser(sub, common)
    demo.add_parser(sub)

    config_p = sub.add_parser("config", help="print every configuration key with its value")
    config_p.add_argument("--config", type=Path, help="TOML configuration file")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    names = (
        "data_dir",
        "bind",
        "tcp_port",
        "tls_port",
        "udp_port",
        "enroll_port",
        "https_port",
        "http_port",
        "drone_port",
        "metrics_port",
        "federation_port",
        "federation_files_port",
        "server_names",
        "federation_name",
        "database_url",
        "log_level",
        "log_json",
    )
    return {name: getattr(args, name, None) for name in names}


def path_hint() -> str | None:
    """How to get ``accord`` on the PATH when it is not (``scripts/serve`` installs it into
    ``./.venv/bin`` and activates nothing): the line for the serve banner, or None."""
    bin_dir = Path(sys.executable).parent
    ours = bin_dir / "accord"
    if sys.prefix == sys.base_prefix or not ours.exists():
        return None  # not a virtual environment's accord: installed where it belongs
    found = shutil.which("accord")
    if found is not None and Path(found).resolve() == ours.resolve():
        return None
    return (
        f"the accord command is not on this shell's PATH: in the shell where you run "
        f"`accord status`, `accord package` ..., first run `. {bin_dir / 'activate'}` "
        f"(or call {ours})"
    )


def _serve(args: argparse.Namespace) -> int:
    config = load(args.config, overrides=_overrides(args), strict=args.strict)
    restart = allocator_restart(config.allocator, os.environ, sys.orig_argv, sys.executable)
    if restart is not None:
        os.execve(*restart)  # the same command on the C allocator (see allocator_restart)
    setup_logging(config.log_level, config.log_json)
    hint = path_hint()
    if hint is not None:
        logging.getLogger("accord").info("%s", hint)
    try:
        import uvloop
    except ImportError:  # optional: plain asyncio works, only slower
        runner = asyncio.run
    else:
        runner = uvloop.run
    if args.workers > 1:
        from accord.cli.workers import serve_workers

        runner(serve_workers(config, args.workers))
        return 0
    runner(serve(config))
    return 0


def _config(args: argparse.Namespace) -> int:
    config = load(args.config, strict=args.strict)
    for f in fields(Config):
        print(f"{f.name} = {getattr(config, f.name)!r}  # {f.metadata.get('doc', '')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Commands on the data directory (status: and the server it serves); each takes the
    # arguments and the configuration.
    offline = {
        "cert": cert.run,
        "package": package.run,
        "user": user.run,
        "qr": qr.run,
        "history": history.run,
        "ledger": ledger.run,
        "mission": mission.run,
        "status": status.run,
        "cluster": cluster.run,
        "drone": drone.run,
        "partner": partner.run,
    }
    try:
        if args.command in offline:
            config = load(args.config, overrides=_overrides(args), strict=args.strict)
            if args.command != "history":  # it checks its query first, then the data dir
                datadir.check(args, config)  # read-only commands need what a server made
            return offline[args.command](args, datadir.with_running(config))
        direct = {
            "serve": _serve,
            "config": _config,
            "policy": policy.run,
            "separation": separation.run,
            "demo": demo.run,
        }
        return direct[args.command](args)
    except (ConfigError, StartupError, PkiError, UserError, datadir.DataDirError) as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file or directory the command needs is not usable
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"accord: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except ServerFailed as exc:
        print(f"accord: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
