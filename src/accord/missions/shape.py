"""The official TAK Server JSON shapes of missions, changes, logs and subscriptions (clients
parse them: field names and time formats as ``Mission.java``, ``MissionChange.java``,
``LogEntry.java``, ``MissionSubscription.java``; reference wave2 §1.3)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from accord.missions.model import Change, Item, LogEntry, Mission, Resource, Role, Subscription

SUBSCRIPTION_TYPE = "com.bbn.marti.sync.model.MissionSubscription"
LOG_TYPE = "com.bbn.marti.sync.model.LogEntry"


def iso_ms(ms: int) -> str:
    """yyyy-MM-dd'T'HH:mm:ss.SSS'Z' (mission, change and log times)."""
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def iso_tenths(ms: int) -> str:
    """yyyy-MM-dd'T'HH:mm:ss.S'Z' (subscription createTime)."""
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(ms % 1000) // 100}Z"


def parse_iso_ms(text: str) -> int:
    """A client's time (ISO 8601, ``Z`` or an offset) in ms; ValueError when it is not one."""
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def role_json(role: Role) -> dict[str, Any]:
    return {"type": role.value, "permissions": list(role.permissions)}


def item_json(item: Item) -> dict[str, Any]:
    return {
        "data": item.uid,
        "timestamp": iso_ms(item.time_ms),
        "creatorUid": item.creator_uid,
        "keywords": list(item.keywords),
        "details": {
            "type": item.type,
            "callsign": item.callsign,
            "location": {"lat": item.lat, "lon": item.lon},
        },
    }


def resource_json(res: Resource) -> dict[str, Any]:
    return {
        "name": res.name,
        "hash": res.hash,
        "submissionTime": iso_ms(res.time_ms),
        "uid": res.hash,
        "size": res.size,
        "creatorUid": res.creator_uid,
        "mimeType": res.mime_type,
        "submitter": res.submitter,
        "keywords": list(res.keywords),
        "expiration": -1,
    }


def log_json(entry: LogEntry, mission_name: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": entry.id,
        "content": entry.content,
        "creatorUid": entry.creator_uid,
        "missionNames": [mission_name],
        "servertime": iso_ms(entry.servertime_ms),
        "dtg": iso_ms(entry.dtg_ms),
        "created": iso_ms(entry.created_ms),
        "contentHashes": list(entry.content_hashes),
        "keywords": list(entry.keywords),
    }
    if entry.entry_uid:
        out["entryUid"] = entry.entry_uid
    return out


def change_json(change: Change, mission: Mission) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": change.type.value,
        "missionName": mission.name,
        "missionGuid": mission.guid,
        "timestamp": iso_ms(change.time_ms),
        "serverTime": iso_ms(change.time_ms),
        "creatorUid": change.creator_uid,
        "isFederatedChange": False,
    }
    if change.item is not None:
        i = change.item
        out["contentUid"] = i.uid
        out["details"] = {
            "type": i.type,
            "callsign": i.callsign,
            "location": {"lat": i.lat, "lon": i.lon},
        }
    if change.resource is not None:
        out["contentResource"] = resource_json(change.resource)
    return out


def mission_json(
    mission: Mission,
    *,
    changes: list[Change] | None = None,
    logs: bool = False,
    token: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": mission.name,
        "description": mission.description,
        "chatRoom": mission.chat_room,
        "baseLayer": "",
        "bbox": "",
        "path": "",
        "classification": "",
        "tool": mission.tool,
        "keywords": list(mission.keywords),
        "creatorUid": mission.creator_uid,
        "createTime": iso_ms(mission.created_ms),
        "lastEdited": iso_ms(mission.edited_ms or mission.created_ms),
        "externalData": [],
        "feeds": [],
        "mapLayers": [],
        "ownerRole": role_json(Role.OWNER),
        "inviteOnly": mission.invite_only,
        "expiration": -1,
        "guid": mission.guid,
        "uids": [item_json(i) for i in mission.items.values()],
        "contents": [
            {"timestamp": iso_ms(r.time_ms), "creatorUid": r.creator_uid, "data": resource_json(r)}
            for r in mission.resources.values()
        ],
        "passwordProtected": mission.password_protected,
        "groups": sorted(mission.groups),
        "defaultRole": role_json(mission.default_role),
    }
    if changes is not None:
        out["missionChanges"] = [change_json(c, mission) for c in changes]
    if logs:
        out["logs"] = [log_json(e, mission.name) for e in mission.logs.values()]
    if token is not None:
        out["token"] = token
    return out


def subscription_json(
    sub: Subscription, token: str, mission: Mission | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "token": token,
        "clientUid": sub.client_uid,
        "username": sub.username,
        "createTime": iso_tenths(sub.created_ms),
        "role": role_json(sub.role),
    }
    if mission is not None:
        out["mission"] = mission_json(mission)
    return out


# -- CoT notifications (TAK Server's DistributedSubscriptionManager seed) ------------------------
NOTIFY_STALE_MS = 20_000  # the official server's stale for every mission notice


def escape_attr(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def _xml_time(ms: int) -> str:
    return iso_ms(ms)


def notice_xml(
    cot_type: str,
    mission_type: str,
    mission: Mission,
    author_uid: str,
    uid: str,
    now_ms: int,
    inner: str = "",
    token: str | None = None,
) -> bytes:
    """One mission notice: ``t-x-m-n`` (CREATE), ``t-x-m-d`` (DELETE), ``t-x-m-c`` (CHANGE),
    ``t-x-m-i`` (INVITE)... ``inner``: XML already escaped to put under ``<mission>``."""
    attrs = (
        f"type={quoteattr(mission_type)} tool={quoteattr(mission.tool)} "
        f"name={quoteattr(mission.name)} guid={quoteattr(mission.guid)} "
        f"authorUid={quoteattr(author_uid)}"
    )
    if token is not None:
        attrs += f" token={quoteattr(token)}"
    t, stale = _xml_time(now_ms), _xml_time(now_ms + NOTIFY_STALE_MS)
    return (
        f'<event version="2.0" uid={quoteattr(uid)} type={quoteattr(cot_type)} how="h-g-i-g-o" '
        f'time="{t}" start="{t}" stale="{stale}">'
        '<point lat="0" lon="0" hae="0" ce="9999999" le="9999999"/>'
        f"<detail><mission {attrs}>{inner}</mission></detail></event>"
    ).encode()


def _el(tag: str, value: object) -> str:
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<{tag}>{text}</{tag}>"


def change_xml(change: Change, mission: Mission) -> str:
    """``<MissionChanges><MissionChange>…`` for a ``t-x-m-c``."""
    parts = [
        _el("creatorUid", change.creator_uid),
        _el("isFederatedChange", "false"),
        _el("missionName", mission.name),
        _el("timestamp", iso_ms(change.time_ms)),
        _el("type", change.type.value),
    ]
    if change.item is not None:
        i = change.item
        parts.insert(0, _el("contentUid", i.uid))
        parts.append(
            f"<details type={quoteattr(i.type)} callsign={quoteattr(i.callsign)}>"
            f'<location lat="{i.lat}" lon="{i.lon}"/></details>'
        )
    if change.resource is not None:
        r = change.resource
        parts.append(
            "<contentResource>"
            + "".join(
                (
                    _el("creatorUid", r.creator_uid),
                    _el("expiration", -1),
                    _el("hash", r.hash),
                    _el("mimeType", r.mime_type),
                    _el("name", r.name),
                    _el("size", r.size),
                    _el("submissionTime", iso_ms(r.time_ms)),
                    _el("submitter", r.submitter),
                    _el("uid", r.hash),
                )
            )
            + "</contentResource>"
        )
    return "<MissionChanges><MissionChange>" + "".join(parts) + "</MissionChange></MissionChanges>"


def role_xml(role: Role) -> str:
    perms = "".join(f'<permission type="{p}"/>' for p in role.permissions)
    return f'<role type="{role.value}"><permissions>{perms}</permissions></role>'
