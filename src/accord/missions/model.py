"""A mission: its metadata, contents (items by uid, files by hash), logs, subscriptions and
invitations, and the changes that made it so.

A :class:`Mission` is a plain value; every edit is a function that checks its input, returns
the mission as it is after the edit and the :class:`Change` to append to the mission's change
log (TAK Server's ``MissionChange``). Nothing is changed when an edit is refused
(:class:`MissionError`, which says what was wrong). Times are milliseconds since 1970.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from accord.domain.groups import Membership

MAX_NAME_CHARS = 128  # TAK Server has no bound; a name is a URL path segment and a file name
MAX_DESCRIPTION_CHARS = 4096
MAX_LOG_CHARS = 16_384  # one log entry's content (a page of text); more is refused with 413
MAX_LOGS = 10_000  # log entries kept per mission
MAX_KEYWORDS = 64
MAX_KEYWORD_CHARS = 128
MAX_UID_CHARS = 256
PASSWORD_ROUNDS = 100_000  # PBKDF2-HMAC-SHA256 iterations (OWASP 2023 asks 600k for SHA256;
# a mission password guards a shared map, and every subscribe pays it)

# A name may carry spaces and punctuation (ATAK allows them), but nothing that is a path or
# markup: no slash, backslash, angle bracket, ampersand, quote, control character, and no
# leading dot (``..``).
_NAME = re.compile(r"^[^./\\<>&\"'\x00-\x1f\x7f][^/\\<>&\"'\x00-\x1f\x7f]*$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


class MissionError(ValueError):
    """An edit that cannot be made; ``status`` is the HTTP answer it maps to."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Role(enum.Enum):
    OWNER = "MISSION_OWNER"
    SUBSCRIBER = "MISSION_SUBSCRIBER"
    READONLY = "MISSION_READONLY_SUBSCRIBER"

    @property
    def permissions(self) -> tuple[str, ...]:
        """TAK Server's MissionPermission names this role holds."""
        if self is Role.OWNER:
            return (
                "MISSION_MANAGE_FEEDS",
                "MISSION_SET_PASSWORD",
                "MISSION_WRITE",
                "MISSION_MANAGE_LAYERS",
                "MISSION_UPDATE_GROUPS",
                "MISSION_SET_ROLE",
                "MISSION_READ",
                "MISSION_DELETE",
            )
        if self is Role.SUBSCRIBER:
            return ("MISSION_WRITE", "MISSION_READ")
        return ("MISSION_READ",)

    @property
    def writes(self) -> bool:
        return "MISSION_WRITE" in self.permissions

    @classmethod
    def parse(cls, text: str) -> Role:
        for role in cls:
            if text in (role.value, role.name):
                return role
        raise MissionError(
            f"unknown role {text[:64]!r}: use MISSION_OWNER, MISSION_SUBSCRIBER or "
            "MISSION_READONLY_SUBSCRIBER"
        )


class ChangeType(enum.Enum):
    CREATE_MISSION = "CREATE_MISSION"
    DELETE_MISSION = "DELETE_MISSION"
    ADD_CONTENT = "ADD_CONTENT"
    REMOVE_CONTENT = "REMOVE_CONTENT"


@dataclass(frozen=True, slots=True)
class Item:
    """A CoT uid in the mission, with what its latest event said (for ``details``)."""

    uid: str
    creator_uid: str
    time_ms: int
    type: str = ""
    callsign: str = ""
    lat: float = 0.0
    lon: float = 0.0
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resource:
    """A file (data package) in the mission, by its SHA-256."""

    hash: str
    name: str
    size: int
    mime_type: str
    creator_uid: str
    submitter: str
    time_ms: int
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LogEntry:
    id: str
    content: str
    creator_uid: str
    dtg_ms: int
    created_ms: int
    servertime_ms: int
    content_hashes: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    entry_uid: str = ""


@dataclass(frozen=True, slots=True)
class Subscription:
    client_uid: str
    username: str
    role: Role
    created_ms: int
    live: bool = True  # False after a disconnectOnly unsubscribe: kept, but told nothing


@dataclass(frozen=True, slots=True)
class Invitation:
    kind: str  # clientUid, callsign, userName, group, team
    invitee: str
    role: Role
    creator_uid: str
    created_ms: int


INVITATION_KINDS = ("clientUid", "callsign", "userName", "group", "team")


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of a mission's append-only change log."""

    type: ChangeType
    time_ms: int
    creator_uid: str
    item: Item | None = None
    resource: Resource | None = None


@dataclass(frozen=True, slots=True)
class Mission:
    name: str
    guid: str
    groups: frozenset[str]
    creator_uid: str
    created_ms: int
    description: str = ""
    tool: str = "public"
    chat_room: str = ""
    default_role: Role = Role.SUBSCRIBER
    invite_only: bool = False
    password: str = ""  # "" (none) or "pbkdf2$<rounds>$<salt hex>$<digest hex>"
    edited_ms: int = 0
    keywords: tuple[str, ...] = ()
    items: dict[str, Item] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    logs: dict[str, LogEntry] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    invitations: tuple[Invitation, ...] = ()
    change_count: int = 0  # changes appended to its log so far: the next one is number +1
    # A partner's mission mirrored here (``accord.missions.federation``): the partner's name
    # ("" for a mission of our own), the mission's guid there, and the federated change ids
    # applied (newest last, bounded): a resend is then applied once.
    origin: str = ""
    origin_guid: str = ""
    applied: tuple[str, ...] = ()

    @property
    def password_protected(self) -> bool:
        return bool(self.password)

    def visible_to(self, caller: Membership) -> bool:
        """Whether ``caller`` may list, read or hear of this mission: as for data packages and
        history, one of the caller's OUT groups is one of the mission's. No groups: nothing."""
        return not caller.outbound.isdisjoint(self.groups)

    def role_of(self, client_uid: str) -> Role | None:
        sub = self.subscriptions.get(client_uid)
        return sub.role if sub is not None else None


# -- checks --------------------------------------------------------------------------------------
def check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME_CHARS or not _NAME.match(name) or name != name.strip():
        raise MissionError(
            f"bad mission name {name[:64]!r}: 1 to {MAX_NAME_CHARS} characters, no leading dot "
            "or surrounding spaces, none of / \\ < > & \" ' or control characters"
        )
    return name


def check_hash(value: str) -> str:
    if not _HASH.match(value):
        raise MissionError(f"bad hash {value[:80]!r}: a SHA-256 in 64 lowercase hex digits")
    return value


def check_uid(uid: str) -> str:
    # no braces either: a token's subject carries the uid, and node-tak splits tokens at "}"
    if not uid or len(uid) > MAX_UID_CHARS or any(c in uid for c in "<>&\"'{}\x00\n\r\t"):
        raise MissionError(f"bad uid {uid[:64]!r}: 1 to {MAX_UID_CHARS} characters, no markup")
    return uid


def check_keywords(words: list[str]) -> tuple[str, ...]:
    if len(words) > MAX_KEYWORDS or any(not w or len(w) > MAX_KEYWORD_CHARS for w in words):
        raise MissionError(
            f"bad keywords: at most {MAX_KEYWORDS}, each 1 to {MAX_KEYWORD_CHARS} characters"
        )
    return tuple(dict.fromkeys(words))


# -- passwords -----------------------------------------------------------------------------------
def hash_password(password: str, salt: bytes) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PASSWORD_ROUNDS)
    return f"pbkdf2${PASSWORD_ROUNDS}${salt.hex()}${digest.hex()}"


def password_matches(mission: Mission, given: str) -> bool:
    if not mission.password:
        return True
    _, rounds, salt, digest = mission.password.split("$")
    got = hashlib.pbkdf2_hmac("sha256", given.encode(), bytes.fromhex(salt), int(rounds))
    return hmac.compare_digest(got.hex(), digest)


# -- edits ---------------------------------------------------------------------------------------
def create(
    name: str,
    guid: str,
    groups: frozenset[str],
    creator_uid: str,
    now_ms: int,
    **options: Any,
) -> tuple[Mission, Change]:
    """A new mission; its creator subscribes as owner (as TAK Server does)."""
    check_name(name)
    if creator_uid:
        check_uid(creator_uid)
    if not groups:
        raise MissionError("a mission needs at least one group")
    description = str(options.get("description", ""))
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise MissionError(f"description longer than {MAX_DESCRIPTION_CHARS} characters", 413)
    owner = Subscription(creator_uid, options.pop("username", ""), Role.OWNER, now_ms)
    mission = Mission(
        name,
        guid,
        groups,
        creator_uid,
        now_ms,
        edited_ms=now_ms,
        subscriptions={creator_uid: owner} if creator_uid else {},
        **options,
    )
    return mission, Change(ChangeType.CREATE_MISSION, now_ms, creator_uid)


def add_items(mission: Mission, items: list[Item], now_ms: int) -> tuple[Mission, list[Change]]:
    new = dict(mission.items)
    changes = []
    for item in items:
        check_uid(item.uid)
        if item.uid not in new:
            changes.append(Change(ChangeType.ADD_CONTENT, now_ms, item.creator_uid, item=item))
        new[item.uid] = item
    return dataclasses.replace(mission, items=new, edited_ms=now_ms), changes


def add_resources(
    mission: Mission, resources: list[Resource], now_ms: int
) -> tuple[Mission, list[Change]]:
    new = dict(mission.resources)
    changes = []
    for res in resources:
        check_hash(res.hash)
        if res.hash not in new:
            changes.append(Change(ChangeType.ADD_CONTENT, now_ms, res.creator_uid, resource=res))
            new[res.hash] = res
    return dataclasses.replace(mission, resources=new, edited_ms=now_ms), changes


def remove_content(
    mission: Mission, creator_uid: str, now_ms: int, *, uid: str = "", hash: str = ""
) -> tuple[Mission, list[Change]]:
    items, resources = dict(mission.items), dict(mission.resources)
    changes = []
    if uid:
        item = items.pop(uid, None)
        if item is None:
            raise MissionError(f"no item {uid[:64]!r} in mission {mission.name!r}", 404)
        changes.append(Change(ChangeType.REMOVE_CONTENT, now_ms, creator_uid, item=item))
    if hash:
        res = resources.pop(hash, None)
        if res is None:
            raise MissionError(f"no file {hash[:64]!r} in mission {mission.name!r}", 404)
        changes.append(Change(ChangeType.REMOVE_CONTENT, now_ms, creator_uid, resource=res))
    if not changes:
        raise MissionError("name the content to remove: uid= or hash=")
    edited = dataclasses.replace(mission, items=items, resources=resources, edited_ms=now_ms)
    return edited, changes


def subscribe(mission: Mission, client_uid: str, username: str, now_ms: int) -> Mission:
    """Subscribe ``client_uid`` (kept when already subscribed, with its role)."""
    check_uid(client_uid)
    known = mission.subscriptions.get(client_uid)
    if known is not None:
        if known.live:
            return mission
        subs = dict(mission.subscriptions)
        subs[client_uid] = dataclasses.replace(known, live=True)
        return dataclasses.replace(mission, subscriptions=subs)
    role = mission.default_role
    for inv in mission.invitations:
        if (inv.kind, inv.invitee) in (("clientUid", client_uid), ("userName", username)):
            role = inv.role
    subs = dict(mission.subscriptions)
    subs[client_uid] = Subscription(client_uid, username, role, now_ms)
    return dataclasses.replace(mission, subscriptions=subs)


def unsubscribe(mission: Mission, client_uid: str, *, disconnect_only: bool = True) -> Mission:
    """TAK Server's default (``disconnect_only``) keeps the subscription and its role but
    stops the notices; otherwise the subscription goes."""
    subs = dict(mission.subscriptions)
    sub = subs.pop(client_uid, None)
    if sub is None:
        raise MissionError(f"{client_uid[:64]!r} is not subscribed to {mission.name!r}", 404)
    if disconnect_only:
        subs[client_uid] = dataclasses.replace(sub, live=False)
    return dataclasses.replace(mission, subscriptions=subs)


def set_role(mission: Mission, client_uid: str, role: Role) -> Mission:
    sub = mission.subscriptions.get(client_uid)
    if sub is None:
        raise MissionError(f"{client_uid[:64]!r} is not subscribed to {mission.name!r}", 404)
    subs = dict(mission.subscriptions)
    subs[client_uid] = dataclasses.replace(sub, role=role)
    return dataclasses.replace(mission, subscriptions=subs)


def put_log(mission: Mission, entry: LogEntry) -> Mission:
    if len(entry.content) > MAX_LOG_CHARS:
        raise MissionError(f"log entry longer than {MAX_LOG_CHARS} characters", 413)
    if entry.id not in mission.logs and len(mission.logs) >= MAX_LOGS:
        raise MissionError(f"mission {mission.name!r} already has {MAX_LOGS} log entries", 413)
    for h in entry.content_hashes:
        check_hash(h)
    check_keywords(list(entry.keywords))
    logs = dict(mission.logs)
    logs[entry.id] = entry
    return dataclasses.replace(mission, logs=logs)


def delete_log(mission: Mission, entry_id: str) -> Mission:
    logs = dict(mission.logs)
    if logs.pop(entry_id, None) is None:
        raise MissionError(f"no log entry {entry_id[:64]!r}", 404)
    return dataclasses.replace(mission, logs=logs)


def invite(mission: Mission, invitation: Invitation) -> Mission:
    if invitation.kind not in INVITATION_KINDS:
        raise MissionError(
            f"unknown invitation type {invitation.kind[:32]!r}: "
            f"one of {', '.join(INVITATION_KINDS)}"
        )
    check_uid(invitation.invitee)
    kept = tuple(
        i
        for i in mission.invitations
        if (i.kind, i.invitee) != (invitation.kind, invitation.invitee)
    )
    return dataclasses.replace(mission, invitations=(*kept, invitation))


def uninvite(mission: Mission, kind: str, invitee: str) -> Mission:
    kept = tuple(i for i in mission.invitations if (i.kind, i.invitee) != (kind, invitee))
    if len(kept) == len(mission.invitations):
        raise MissionError(f"no invitation for {kind} {invitee[:64]!r}", 404)
    return dataclasses.replace(mission, invitations=kept)


def changes_between(
    changes: list[Change], start_ms: int | None, end_ms: int | None
) -> list[Change]:
    """The changes in [start_ms, end_ms] (either bound open when None), oldest first."""
    return [
        c
        for c in changes
        if (start_ms is None or c.time_ms >= start_ms) and (end_ms is None or c.time_ms <= end_ms)
    ]
