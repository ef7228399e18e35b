"""``accord qr USER``: the QR code a phone scans to enrol (ATAK) or to add the server (iTAK)."""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path

from accord.cli.package import endpoint_for, ensure_user, is_loopback
from accord.config import Config
from accord.identity.ca import PkiError
from accord.identity.p12 import new_password
from accord.identity.qr import encode_png, encode_text, enrollment_uri, quick_connect_csv
from accord.identity.users import UserStore


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "qr",
        parents=[common],
        help="print and save the enrolment QR code for a user (sets a new one-time password)",
    )
    p.add_argument("user", help="the user (made if new)")
    p.add_argument("--group", action="append", default=[], help="groups of a new user (repeat)")
    p.add_argument(
        "--host",
        help="the name or address devices dial (default: the first of server_names that is "
        "not a loopback name or address)",
    )
    p.add_argument(
        "--itak",
        action="store_true",
        help="iTAK's server QR (description,host,port,SSL); iTAK then asks for the password",
    )
    p.add_argument("--out", type=Path, help="PNG to write (default: USER-qr.png)")


def qr_host(config: Config, host: str | None) -> str:
    """``--host``, else the first of ``server_names`` a phone can dial."""
    if host:
        return host
    for name in config.server_names:
        if not is_loopback(name):
            return name
    raise PkiError(
        f"server_names ({', '.join(config.server_names)}) has no name a phone can dial, only "
        "loopback ones: give --host NAME (the name or address devices reach this server at), "
        "or set server_names"
    )


def run(args: argparse.Namespace, config: Config) -> int:
    host = qr_host(config, args.host)  # before any change: a refused QR changes nothing
    store = UserStore(config.data_dir)
    ensure_user(store, args.user, args.group)
    endpoint = endpoint_for(config, host)
    note = ""
    if args.itak:
        payload = quick_connect_csv(endpoint)
    else:
        # ATAK's QR carries the enrolment password ("token"). The stored password is only a
        # hash, so a fresh random one is set and shown here, once.
        token = new_password(secrets.token_bytes)
        store.set_password(args.user, token, now_ms=int(time.time() * 1000))
        payload = enrollment_uri(endpoint, args.user, token)
        note = f"{args.user}'s password is now {token} (the QR carries it; change it later)"
    out: Path = args.out or Path(f"{args.user}-qr.png")
    out.write_bytes(encode_png(payload))
    print(encode_text(payload))
    print(payload)
    if note:
        print(note)
    print(f"the QR carries host={endpoint.host}; saved {out}")
    return 0
