"""Missions shared with partner servers under their release policy: the pure core.

Sending side (the mission's **origin**): each change of a mission (an item added or removed, a
file added or removed, a log entry written or removed) is offered to each partner; :func:`outbound`
decides it by the partner policy's ``[[mission]]`` sections (:class:`MissionShare`): the first
section naming the mission (name glob or keyword) decides; a part it does not ``share`` is
withheld and counted under the section's name; an item is also decided as a CoT event by the
policy's rules (it may be withheld, delayed = withheld here, coarsened or renamed). What is
released becomes a :class:`Shared` change, with the mission's metadata, to carry on the link.

Receiving side: :func:`apply` keeps the partner's **mirror**, a mission named
``<partner>:<name>`` (never colliding with one of ours), its origin recorded, in the groups the
link delivers to; a change id applied before (a resend, a flap) is not applied again. The
mirror's users may subscribe and write logs; such a log goes back to the origin
(:func:`outbound` on a mirror releases logs only, and only to its origin), which takes it with
:func:`accept_log` only if its policy for that partner ``accept``\\ s logs for the mission. A log
entry removed crosses the same ways (:class:`LogRemoved`); the origin removes an entry at a
partner's word only if that partner's mirror wrote it.

Nothing here reads a clock or does I/O; times are passed in (ms since 1970).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from dataclasses import dataclass
from typing import Any

from accord.cot.model import UNKNOWN_VALUE, CotEvent, Point, iso_from_ms
from accord.cot.xml import decode_xml
from accord.missions.model import (
    MAX_LOG_CHARS,
    Change,
    ChangeType,
    Item,
    LogEntry,
    Mission,
    MissionError,
    Resource,
    check_hash,
    check_name,
    check_uid,
)
from accord.policy import Policy, PolicyState, Release, decide
from accord.policy.model import MissionShare

MAX_SHARED_BYTES = 64 * 1024  # one change on the wire (a log entry is at most 16 KiB of text)
APPLIED_IDS = 10_000  # change ids remembered per mirror (and per origin mission) for dedupe
MIRROR_SEPARATOR = ":"
KINDS = (
    "item-add",
    "item-remove",
    "file-add",
    "file-remove",
    "log",
    "log-remove",
    "mission-delete",
)
UNSHARED_RULE = "(no [[mission]])"  # a change of a mission no section names: counted so
ITEM_TYPE = "a-u-G"  # the CoT type an item is decided as when its event said none


class SharedError(ValueError):
    """A change from a partner that cannot be used (it is dropped and counted)."""


@dataclass(frozen=True, slots=True)
class Shared:
    """One mission change as it crosses the link."""

    id: str  # unique at the origin: "<mission guid>/<kind>/<key>/<version>"
    mission_guid: str  # the mission's guid at its origin
    mission_name: str  # its name at its origin
    kind: str  # one of KINDS
    time_ms: int
    creator_uid: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    tool: str = "public"
    item: Item | None = None
    resource: Resource | None = None
    log: LogEntry | None = None
    url: str = ""  # a file's content at the origin (fetched with the federation certificate)


@dataclass(frozen=True, slots=True)
class LogRemoved:
    """A log entry removed from a mission (offered to partners like a written one)."""

    entry: LogEntry


@dataclass(frozen=True, slots=True)
class Send:
    shared: Shared
    rule: str  # the [[mission]] section (and, for an item, the event rule) that released it


@dataclass(frozen=True, slots=True)
class Withheld:
    rule: str
    reason: str


Decision = Send | Withheld


# -- which missions, which parts ---------------------------------------------------------------
def share_of(policy: Policy, mission: Mission) -> MissionShare | None:
    """The first ``[[mission]]`` section naming ``mission``; a mirror is named by its name at
    the origin as well as by its qualified name."""
    names = {mission.name, mission_name_at_origin(mission)}
    for share in policy.missions:
        if any(fnmatch.fnmatchcase(n, g) for n in names for g in share.missions):
            return share
        if not set(share.keywords).isdisjoint(mission.keywords):
            return share
    return None


def mission_name_at_origin(mission: Mission) -> str:
    if mission.origin and mission.name.startswith(mission.origin + MIRROR_SEPARATOR):
        return mission.name[len(mission.origin) + len(MIRROR_SEPARATOR) :]
    return mission.name


def mirror_name(partner: str, name: str) -> str:
    return f"{partner}{MIRROR_SEPARATOR}{name}"


def _part(kind: str) -> str | None:
    """The part of a mission a change kind is (None: the mission itself, shared with any)."""
    return {"item": "items", "file": "files", "log": "logs"}.get(kind.split("-")[0])


def change_kind(change: Change) -> str | None:
    """The federated kind of a change of the mission's log (None: not shared: a mission's
    creation crosses with its first shared change; its deletion deletes the mirror)."""
    if change.type is ChangeType.DELETE_MISSION:
        return "mission-delete"
    add = change.type is ChangeType.ADD_CONTENT
    if change.type not in (ChangeType.ADD_CONTENT, ChangeType.REMOVE_CONTENT):
        return None
    if change.item is not None:
        return "item-add" if add else "item-remove"
    if change.resource is not None:
        return "file-add" if add else "file-remove"
    return None


def outbound(
    policy: Policy,
    mission: Mission,
    partner: str,
    change: Change | LogEntry | LogRemoved,
    number: int,
    now_ms: int,
    state: PolicyState,
    key: bytes | None = None,
) -> Decision | None:
    """Whether ``change`` (number ``number`` of the mission's change log, or a log entry) of
    ``mission`` goes to ``partner`` under its ``policy``, and as what. None: nothing to decide
    (a change kind that is not federated, a mirror's change that is not its own log)."""
    if isinstance(change, LogEntry):
        kind = "log"
    elif isinstance(change, LogRemoved):
        kind = "log-remove"
    else:
        found = change_kind(change)
        if found is None:
            return None
        kind = found
    if mission.origin and (mission.origin != partner or kind not in ("log", "log-remove")):
        return None  # a mirror sends back only the logs its users write, only to its origin
    share = share_of(policy, mission)
    if share is None:
        return Withheld(UNSHARED_RULE, f"no [[mission]] names {mission.name!r}")
    part = _part(kind)
    if part is not None and part not in share.share:
        return Withheld(share.name, f"[[mission]] {share.name} does not share {part}")
    guid = mission.origin_guid if mission.origin else mission.guid
    name = mission_name_at_origin(mission)
    base = Shared(
        "",
        guid,
        name,
        kind,
        now_ms,
        "",
        mission.description,
        mission.keywords,
        mission.tool,
    )
    if isinstance(change, LogEntry):
        version = change.servertime_ms
        return Send(
            dataclasses.replace(
                base,
                id=f"{guid}/log/{change.id}/{version}",
                time_ms=change.servertime_ms,
                creator_uid=change.creator_uid,
                log=change,
            ),
            share.name,
        )
    if isinstance(change, LogRemoved):  # one per entry: an entry id is never used again
        entry = change.entry
        return Send(
            dataclasses.replace(
                base,
                id=f"{guid}/log-remove/{entry.id}",
                time_ms=now_ms,
                creator_uid=entry.creator_uid,
                log=entry,
            ),
            share.name,
        )
    base = dataclasses.replace(base, time_ms=change.time_ms, creator_uid=change.creator_uid)
    if kind == "mission-delete":  # one per mission: a resend of it is the same change
        return Send(dataclasses.replace(base, id=f"{guid}/mission-delete"), share.name)
    if change.resource is not None:
        res = change.resource
        return Send(
            dataclasses.replace(base, id=f"{guid}/{kind}/{res.hash}/{number}", resource=res),
            share.name,
        )
    assert change.item is not None
    try:
        decision = decide(item_event(change.item, now_ms), policy, now_ms, state, key=key)
    except ValueError as exc:  # pseudonymises without a key: nothing leaves un-renamed
        return Withheld(share.name, str(exc))
    if not isinstance(decision, Release):
        return Withheld(decision.rule, f"item {change.item.uid} withheld by the event rules")
    released = item_released(change.item, decision.event)
    return Send(
        dataclasses.replace(base, id=f"{guid}/{kind}/{change.item.uid}/{number}", item=released),
        f"{share.name}/{decision.rule}",
    )


def item_event(item: Item, now_ms: int) -> CotEvent:
    """An item as the CoT event the policy's rules decide (what the mirror will show of it)."""
    xml = (
        f'<event version="2.0" uid="{_attr(item.uid)}" type="{_attr(item.type or ITEM_TYPE)}" '
        f'how="h-e" time="{iso_from_ms(now_ms)}" start="{iso_from_ms(now_ms)}" '
        f'stale="{iso_from_ms(now_ms + 60_000)}"><point lat="{item.lat!r}" lon="{item.lon!r}" '
        f'hae="{UNKNOWN_VALUE}" ce="{UNKNOWN_VALUE}" le="{UNKNOWN_VALUE}"/><detail>'
        + (f'<contact callsign="{_attr(item.callsign)}"/>' if item.callsign else "")
        + "</detail></event>"
    )
    return decode_xml(xml.encode())


def item_released(item: Item, event: CotEvent) -> Item:
    point: Point = event.point
    contact = event.detail.contact
    return dataclasses.replace(
        item,
        uid=event.uid,
        lat=point.lat,
        lon=point.lon,
        callsign=contact.callsign if contact is not None else "",
        creator_uid=event.uid if item.creator_uid == item.uid else item.creator_uid,
    )


def _attr(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


# -- the receiving side ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Applied:
    mission: Mission
    changes: list[Change]  # to append to the mirror's change log (and notify)
    created: bool  # the mirror is new
    deleted: bool = False  # the origin deleted the mission: delete the mirror


def remembered(mission: Mission, change_id: str) -> Mission:
    ids = (*mission.applied, change_id)[-APPLIED_IDS:]
    return dataclasses.replace(mission, applied=ids)


def apply(
    mirror: Mission | None,
    partner: str,
    shared: Shared,
    *,
    guid: str,
    groups: frozenset[str],
    now_ms: int,
) -> Applied | None:
    """``shared`` from ``partner`` applied to its mirror (``mirror``; None: make one with
    ``guid`` in ``groups``). None when this change was applied before, or deletes a mirror
    that is not (or no longer) here."""
    if mirror is not None and shared.id in mirror.applied:
        return None
    if shared.kind == "mission-delete":
        return None if mirror is None else Applied(mirror, [], False, deleted=True)
    created = mirror is None
    if mirror is None:
        mirror = Mission(
            check_name(mirror_name(partner, shared.mission_name)),
            guid,
            groups,
            "",
            now_ms,
            origin=partner,
            origin_guid=shared.mission_guid,
        )
    mirror = dataclasses.replace(
        mirror,
        description=shared.description,
        keywords=shared.keywords,
        tool=shared.tool,
        edited_ms=now_ms,
    )
    changes: list[Change] = []
    items, resources, logs = dict(mirror.items), dict(mirror.resources), dict(mirror.logs)
    kind = shared.kind
    if kind in ("item-add", "item-remove") and shared.item is not None:
        item = shared.item
        if kind == "item-add":
            if item.uid not in items:
                changes.append(Change(ChangeType.ADD_CONTENT, now_ms, shared.creator_uid, item))
            items[item.uid] = item
        elif items.pop(item.uid, None) is not None:
            changes.append(Change(ChangeType.REMOVE_CONTENT, now_ms, shared.creator_uid, item))
    elif kind in ("file-add", "file-remove") and shared.resource is not None:
        res = shared.resource
        if kind == "file-add":
            if res.hash not in resources:
                changes.append(
                    Change(ChangeType.ADD_CONTENT, now_ms, shared.creator_uid, resource=res)
                )
            resources[res.hash] = res
        elif resources.pop(res.hash, None) is not None:
            changes.append(
                Change(ChangeType.REMOVE_CONTENT, now_ms, shared.creator_uid, resource=res)
            )
    elif kind == "log" and shared.log is not None:
        logs[shared.log.id] = shared.log
    elif kind == "log-remove" and shared.log is not None:
        logs.pop(shared.log.id, None)
    mirror = dataclasses.replace(mirror, items=items, resources=resources, logs=logs)
    return Applied(remembered(mirror, shared.id), changes, created)


def accept_log(policy: Policy, mission: Mission, partner: str, shared: Shared) -> Mission | str:
    """At the origin: a log entry written (or removed) on ``partner``'s mirror of ``mission``.
    The mission with it (or without it), or why it is refused: our policy for the partner does
    not accept logs for it, or the entry to remove was not written on that partner's mirror."""
    if shared.kind not in ("log", "log-remove") or shared.log is None or mission.origin:
        return f"a {shared.kind} change for our mission {mission.name!r} is not taken"
    share = share_of(policy, mission)
    if share is None or "logs" not in share.accept:
        return f"the policy for {partner} accepts no logs for mission {mission.name!r}"
    if shared.id in mission.applied:
        return mission
    logs = dict(mission.logs)
    if shared.kind == "log-remove":
        written = f"{mission.guid}/log/{shared.log.id}/"
        if not any(i.startswith(written) for i in mission.applied):
            return f"log entry {shared.log.id[:64]!r} of {mission.name!r} is not {partner}'s"
        logs.pop(shared.log.id, None)
    else:
        logs[shared.log.id] = shared.log
    return remembered(dataclasses.replace(mission, logs=logs), shared.id)


# -- the wire ----------------------------------------------------------------------------------
def encode_shared(shared: Shared) -> bytes:
    plain: dict[str, Any] = {
        k: getattr(shared, k) for k in Shared.__dataclass_fields__ if getattr(shared, k) is not None
    }
    plain["keywords"] = list(shared.keywords)
    for key in ("item", "resource", "log"):
        if key in plain:
            plain[key] = dataclasses.asdict(plain[key])
    return json.dumps(plain, separators=(",", ":"), sort_keys=True).encode()


def decode_shared(data: bytes) -> Shared:
    """A change a partner sent; :class:`SharedError` naming what is wrong."""
    if len(data) > MAX_SHARED_BYTES:
        raise SharedError(f"{len(data)} bytes: a change is at most {MAX_SHARED_BYTES}")
    try:
        d = json.loads(data)
        if not isinstance(d, dict):
            raise SharedError("not a JSON object")
        shared = Shared(
            id=_text(d, "id"),
            mission_guid=_text(d, "mission_guid"),
            mission_name=check_name(_text(d, "mission_name")),
            kind=_text(d, "kind"),
            time_ms=int(d["time_ms"]),
            creator_uid=str(d.get("creator_uid", ""))[:256],
            description=str(d.get("description", ""))[:4096],
            keywords=tuple(str(k)[:128] for k in d.get("keywords", ())[:64]),
            tool=str(d.get("tool", "public"))[:64],
            item=_item(d["item"]) if d.get("item") else None,
            resource=_resource(d["resource"]) if d.get("resource") else None,
            log=_log(d["log"]) if d.get("log") else None,
            url=_url(d.get("url", "")),
        )
    except SharedError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, MissionError) as exc:
        raise SharedError(f"not a mission change: {exc}") from None
    if shared.kind not in KINDS:
        raise SharedError(f"unknown change kind {shared.kind[:32]!r}")
    if shared.kind == "mission-delete":
        return shared
    need = {"item": shared.item, "file": shared.resource, "log": shared.log}[
        shared.kind.split("-")[0]
    ]
    if need is None:
        raise SharedError(f"a {shared.kind} change without its {shared.kind.split('-')[0]}")
    return shared


def _url(value: object) -> str:
    if value == "":
        return ""
    if not isinstance(value, str) or not value.startswith("https://") or len(value) > 2048:
        raise SharedError("url: an https:// URL of at most 2048 characters")
    return value


def _text(d: dict[str, Any], key: str) -> str:
    value = d.get(key)
    if not isinstance(value, str) or not value or len(value) > 512:
        raise SharedError(f"{key}: must be a string of 1 to 512 characters")
    return value


def _item(d: dict[str, Any]) -> Item:
    item = Item(**{**d, "keywords": tuple(d.get("keywords", ()))})
    check_uid(item.uid)
    return item


def _resource(d: dict[str, Any]) -> Resource:
    res = Resource(**{**d, "keywords": tuple(d.get("keywords", ()))})
    check_hash(res.hash)
    return res


def _log(d: dict[str, Any]) -> LogEntry:
    entry = LogEntry(
        **{
            **d,
            "content_hashes": tuple(d.get("content_hashes", ())),
            "keywords": tuple(d.get("keywords", ())),
        }
    )
    if len(entry.content) > MAX_LOG_CHARS:
        raise SharedError(f"log entry longer than {MAX_LOG_CHARS} characters")
    check_uid(entry.id)
    return entry
