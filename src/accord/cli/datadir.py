"""What a command may do to a data directory, and which server runs on it.

Only ``serve``, ``cert init|server|client|revoke``, ``user …``, ``package``, ``qr`` and
``partner add|remove`` make or change state in a data directory. Every other command reads
one a server (or ``accord cert init``) made: on a missing or empty one it says so in one line
and exits 2, so that a mistyped ``--data-dir`` never yields a fresh CA (whose fingerprint an
operator might send a partner) or an empty history that looks like a quiet server.

A running server writes where it listens into ``<data_dir>/running.json``
(:mod:`accord.app.running`); :func:`with_running` gives the commands its ports and names
instead of those of the configuration they were started with.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from accord.app.running import read_record
from accord.config import Config
from accord.identity.ca import PkiPaths
from accord.store.opening import SQLITE_FILE

# (command, subcommand) -> what it reads: "ca" (pki/ca.pem), "db" (the SQLite database),
# "dir" (a data directory with anything in it).
_READS: dict[tuple[str, str], str] = {
    ("cert", "list"): "ca",
    ("cert", "revoke"): "ca",
    ("partner", "self"): "ca",
    ("partner", "list"): "dir",
    ("status", ""): "ca",
    ("cluster", "status"): "ca",
    ("drone", "add"): "ca",
    ("drone", "list"): "ca",
    ("drone", "remove"): "ca",
    ("history", ""): "db",
    ("ledger", "show"): "db",
    ("ledger", "verify"): "db",
    ("ledger", "export"): "db",
}


class DataDirError(Exception):
    """The data directory a read-only command was given is not one a server made."""


def _subcommand(args: argparse.Namespace) -> str:
    for name in ("cert_command", "verb", "drone_command", "ledger_command"):
        value = getattr(args, name, None)
        if isinstance(value, str):
            return value
    return ""


def sqlite_file(database_url: str, data_dir: Path) -> Path | None:
    """The SQLite file a database URL names (as :func:`accord.store.opening.open_store`
    reads it), or None for a server database (PostgreSQL)."""
    if database_url in ("", "sqlite:", "sqlite://"):
        return data_dir / SQLITE_FILE
    if database_url.startswith("sqlite:///"):
        return Path(database_url[len("sqlite:///") - 1 :])
    return None


def check(args: argparse.Namespace, config: Config) -> None:
    """Raise :class:`DataDirError` when ``args`` is a read-only command and the data
    directory lacks what it reads; nothing is created either way."""
    needs = _READS.get((args.command, _subcommand(args)))
    if needs is None:
        return
    if needs == "db" and getattr(args, "file", None) is not None:
        return  # ledger verify --file: an export, not the store
    data_dir = config.data_dir
    fix = (
        "give the --data-dir (or --config) the server runs with; `accord serve` or "
        "`accord cert init` makes one"
    )
    if needs == "db":
        url = getattr(args, "database_url", None) or config.database_url
        db = sqlite_file(url, data_dir)
        if db is None or db.exists():
            return
        if db.parent == data_dir and not data_dir.is_dir():
            raise DataDirError(f"no data directory {data_dir}: {fix}")
        raise DataDirError(
            f"no database {db}: no server has run on {data_dir} yet (nothing to read); {fix}"
        )
    if not data_dir.is_dir():
        raise DataDirError(f"no data directory {data_dir}: {fix}")
    if needs == "dir":
        if not any(data_dir.iterdir()):
            raise DataDirError(f"data directory {data_dir} is empty: {fix}")
        return
    ca = PkiPaths(data_dir / "pki").ca_cert
    if not ca.exists():
        raise DataDirError(f"no CA in {data_dir} ({ca} is missing): {fix}")


def with_running(config: Config) -> Config:
    """``config`` with the addresses of the server running on its data directory, when one
    is (its ``running.json``), so that commands reach that server and not another one on the
    configured ports."""
    found = read_record(config.data_dir)
    if found is None:
        return config
    ports = found.ports
    return dataclasses.replace(
        config,
        bind=found.bind,
        tcp_port=ports.get("tcp", 0),
        tls_port=ports.get("tls", 0),
        udp_port=ports.get("udp", 0),
        https_port=ports.get("https", 0),
        enroll_port=ports.get("enroll", 0),
        http_port=ports.get("http", 0),
        metrics_port=ports.get("metrics", 0),
        drone_port=ports.get("drone:mavlink", 0),
        federation_port=found.federation_port,
        federation_files_port=found.federation_files_port,
        server_names=found.server_names or config.server_names,
        federation_name=found.federation_name,
    )
