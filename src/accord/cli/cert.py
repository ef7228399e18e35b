"""``accord cert``: the CA, server and client certificates, revocation."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from accord.config import Config
from accord.identity import registry
from accord.identity.ca import PkiPaths, load_authority
from accord.identity.ledger_key import ensure_ledger_key
from accord.identity.p12 import DEFAULT_PASSWORD
from accord.identity.pki import ensure_pki, init_ca, issue_client, issue_server


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    cert_p = sub.add_parser("cert", help="certificates from Accord's CA")
    cert_sub = cert_p.add_subparsers(dest="cert_command", required=True)
    init_p = cert_sub.add_parser(
        "init", parents=[common], help="create the root CA (once; an existing one is kept)"
    )
    init_p.add_argument("--cn", default="Accord CA", help="the CA's common name")
    server_p = cert_sub.add_parser(
        "server", parents=[common], help="(re)issue the server certificate"
    )
    server_p.add_argument(
        "--host",
        action="append",
        dest="hosts",
        help="a name or IP clients dial (repeat; default: server_names from the config)",
    )
    client_p = cert_sub.add_parser(
        "client", parents=[common], help="issue a client certificate: PEM, key and .p12"
    )
    client_p.add_argument("name", help="common name (the user)")
    client_p.add_argument("--group", help="put the group in the certificate (OU)")
    client_p.add_argument("--out", type=Path, default=Path("."), help="output directory")
    client_p.add_argument(
        "--password", default=DEFAULT_PASSWORD, help="for the .p12 (default: atakatak)"
    )
    revoke_p = cert_sub.add_parser(
        "revoke", parents=[common], help="revoke every certificate of NAME"
    )
    revoke_p.add_argument("name")
    cert_sub.add_parser("list", parents=[common], help="certificates issued, and their state")


def run(args: argparse.Namespace, config: Config) -> int:
    now = dt.datetime.now(dt.UTC)
    root = config.data_dir / "pki"
    command = args.cert_command
    if command == "init":
        paths = PkiPaths(root)
        if paths.ca_cert.exists() or paths.ca_key.exists():
            load_authority(paths)  # a CA that does not load is an error, not "kept"
            print(f"CA kept: {paths.ca_cert} exists (every certificate it issued stays valid)")
        else:
            paths = init_ca(root, now, args.cn)
            print(f"CA created: {paths.ca_cert}")
        # The ledger key is made with the CA: `accord partner self` prints it.
        ensure_ledger_key(root, config.federation_name or config.server_names[0])
        return 0
    if command == "server":
        paths = ensure_pki(root, config.server_names, now)
        hosts = tuple(args.hosts) if args.hosts else config.server_names
        issue_server(paths, hosts, now)
        print(f"server certificate for {', '.join(hosts)}: {paths.server_cert}")
        print("restart `accord serve` to present it")
        return 0
    if command == "list":
        return _list(PkiPaths(root))  # read-only: never issues, records or re-signs anything
    paths = ensure_pki(root, config.server_names, now)
    if command == "client":
        files = issue_client(paths, args.name, args.out, now, ou=args.group, password=args.password)
        print(f"{files.cert}\n{files.key}\n{files.p12}")
        return 0
    if command == "revoke":
        for row in registry.revoke(paths, args.name, now):
            print(f"revoked {row.name} serial {row.serial}")
        print("a running server applies it within seconds and closes the live sessions")
        return 0
    raise AssertionError(f"unknown cert command {command!r}")


def _list(paths: PkiPaths) -> int:
    rows = registry.load_index(paths)
    print(f"{'name':24} {'kind':7} {'serial':34} {'expires':20} state")
    for row in rows:
        state = f"revoked {row.revoked_at[:19]}" if row.revoked else "valid"
        print(f"{row.name:24} {row.kind:7} {row.serial:34} {row.not_after[:19]:20} {state}")
    return 0
