"""``accord user``: the people who enrol and connect, their passwords and groups."""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from accord.config import Config
from accord.domain.groups import Membership
from accord.identity.users import User, UserError, UserStore, membership_of


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    groups = argparse.ArgumentParser(add_help=False)
    groups.add_argument(
        "--group", action="append", default=[], help="member of GROUP both ways (repeat)"
    )
    groups.add_argument(
        "--in", dest="inbound", action="append", default=[], help="sends into GROUP (repeat)"
    )
    groups.add_argument(
        "--out", dest="outbound", action="append", default=[], help="hears GROUP (repeat)"
    )
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (scripts); otherwise it is asked for",
    )
    user_p = sub.add_parser("user", help="users: passwords (for enrolment) and groups")
    user_sub = user_p.add_subparsers(dest="user_command", required=True)
    add_p = user_sub.add_parser("add", parents=[common, groups, password], help="add a user")
    add_p.add_argument("name")
    remove_p = user_sub.add_parser("remove", parents=[common], help="remove a user")
    remove_p.add_argument("name")
    passwd_p = user_sub.add_parser("passwd", parents=[common, password], help="set a password")
    passwd_p.add_argument("name")
    groups_p = user_sub.add_parser(
        "groups",
        parents=[common, groups],
        help="set a user's groups (live sessions follow within seconds)",
    )
    groups_p.add_argument("name")
    user_sub.add_parser("list", parents=[common], help="users and their groups")


def run(args: argparse.Namespace, config: Config) -> int:
    store = UserStore(config.data_dir)
    now_ms = int(time.time() * 1000)
    command = args.user_command
    if command == "add":
        user = store.add(args.name, _password(args), _membership(args), now_ms=now_ms)
        print(f"added {_describe(user)}")
    elif command == "remove":
        store.remove(args.name)
        print(f"removed {args.name} (revoke its certificates with `accord cert revoke`)")
    elif command == "passwd":
        store.set_password(args.name, _password(args), now_ms=now_ms)
        print(f"password of {args.name} changed")
    elif command == "groups":
        user = store.set_groups(args.name, _membership(args), now_ms=now_ms)
        print(f"now {_describe(user)}")
    else:
        for user in store.list():
            print(_describe(user))
    return 0


def _membership(args: argparse.Namespace) -> Membership:
    return membership_of(args.group, inbound=args.inbound, outbound=args.outbound)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ; nothing was changed")
    return first


def _describe(user: User) -> str:
    m = user.membership
    both = sorted(m.inbound & m.outbound)
    only_in = sorted(m.inbound - m.outbound)
    only_out = sorted(m.outbound - m.inbound)
    parts = [f"groups={','.join(both) or '-'}"]
    if only_in:
        parts.append(f"in={','.join(only_in)}")
    if only_out:
        parts.append(f"out={','.join(only_out)}")
    if user.disabled:
        parts.append("disabled")
    return f"{user.name} " + " ".join(parts)
