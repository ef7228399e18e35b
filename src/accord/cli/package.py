"""``accord package USER``: the zip a phone or laptop imports to connect (or to enrol)."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import secrets
import sys
import time
import uuid
from pathlib import Path

from accord.config import Config
from accord.identity.ca import PkiError
from accord.identity.handout import issue_package
from accord.identity.p12 import new_password
from accord.identity.package import API_PORT, ENROLLMENT_PORT, FLAVOURS, STREAM_PORT, Endpoint
from accord.identity.pki import ensure_pki
from accord.identity.users import User, UserStore, membership_of


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "package",
        parents=[common],
        help="write the connection data package for a user (ATAK, WinTAK, iTAK)",
    )
    p.add_argument("user", help="the user (made, with a random password, if new)")
    p.add_argument("--group", action="append", default=[], help="groups of a new user (repeat)")
    p.add_argument(
        "--flavour",
        choices=FLAVOURS,
        default="atak",
        help="atak (also WinTAK): MANIFEST + certs/; itak: flat files",
    )
    p.add_argument(
        "--enroll",
        action="store_true",
        help="no client key in the package: the device enrols with user name and password",
    )
    p.add_argument("--host", help="the name or address devices dial (default: server_names[0])")
    p.add_argument("--out", type=Path, help="zip to write (default: USER-HOST[-enroll].zip)")


def ensure_user(store: UserStore, name: str, groups: list[str]) -> User:
    """The user, made on the spot when new, so that `accord cert init` and one more command
    give a phone-ready package. Its password is random: it enrols with the QR or has one set."""
    user = store.get(name)
    if user is not None:
        return user
    password = new_password(secrets.token_bytes)
    user = store.add(name, password, membership_of(groups), now_ms=int(time.time() * 1000))
    print(f"new user {name} (groups: {', '.join(groups) or 'listener default'})")
    return user


def is_loopback(host: str) -> bool:
    """A name or address that means "this machine" to whoever dials it (a phone would dial
    itself): localhost and its subdomains, 127.0.0.0/8, ::1, and the unspecified address."""
    name = host.strip("[]").rstrip(".").lower()
    if name in ("localhost", "ip6-localhost", "ip6-loopback") or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def endpoint_for(config: Config, host: str | None) -> Endpoint:
    """Where devices reach this server: ``host`` or the certificate's first name."""
    host = host or config.server_names[0]
    try:
        return Endpoint(
            host,
            f"Accord {host}",
            stream_port=config.tls_port or STREAM_PORT,
            api_port=config.https_port or API_PORT,
            enrollment_port=config.enroll_port or ENROLLMENT_PORT,
        )
    except ValueError as exc:
        raise PkiError(str(exc)) from None


def run(args: argparse.Namespace, config: Config) -> int:
    now = dt.datetime.now(dt.UTC)
    user = ensure_user(UserStore(config.data_dir), args.user, args.group)
    endpoint = endpoint_for(config, args.host)
    host = endpoint.host
    if args.host is None and is_loopback(host):
        print(
            f"note: the package points at {host}, which a phone resolves to itself; give "
            "--host NAME (or put that name first in server_names)",
            file=sys.stderr,
        )
    paths = ensure_pki(config.data_dir / "pki", config.server_names, now)
    data = issue_package(
        paths,
        endpoint,
        user.name,
        now,
        uid=str(uuid.uuid4()),
        random_bytes=secrets.token_bytes,
        flavour=args.flavour,
        enroll=args.enroll,
    )
    default_name = f"{user.name}-{host}{'-enroll' if args.enroll else ''}.zip"
    out: Path = args.out or Path(default_name)
    out.write_bytes(data)
    print(out)
    return 0
