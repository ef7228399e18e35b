"""Missions and changes to and from the JSON documents the store keeps (not the wire shapes:
those are in :mod:`accord.missions.shape`)."""

from __future__ import annotations

import json
from typing import Any

from accord.missions.model import (
    Change,
    ChangeType,
    Invitation,
    Item,
    LogEntry,
    Mission,
    Resource,
    Role,
    Subscription,
)


def _item(d: dict[str, Any]) -> Item:
    return Item(**{**d, "keywords": tuple(d.get("keywords", ()))})


def _resource(d: dict[str, Any]) -> Resource:
    return Resource(**{**d, "keywords": tuple(d.get("keywords", ()))})


def _plain(value: Any) -> Any:
    if isinstance(value, Role | ChangeType):
        return value.value
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


def encode_mission(mission: Mission) -> str:
    return json.dumps(_plain(mission), separators=(",", ":"), sort_keys=True)


def decode_mission(doc: str) -> Mission:
    d = json.loads(doc)
    return Mission(
        **{
            **d,
            "groups": frozenset(d["groups"]),
            "default_role": Role(d["default_role"]),
            "keywords": tuple(d["keywords"]),
            "items": {k: _item(v) for k, v in d["items"].items()},
            "resources": {k: _resource(v) for k, v in d["resources"].items()},
            "logs": {
                k: LogEntry(
                    **{
                        **v,
                        "content_hashes": tuple(v["content_hashes"]),
                        "keywords": tuple(v["keywords"]),
                    }
                )
                for k, v in d["logs"].items()
            },
            "subscriptions": {
                k: Subscription(**{**v, "role": Role(v["role"])})
                for k, v in d["subscriptions"].items()
            },
            "invitations": tuple(
                Invitation(**{**v, "role": Role(v["role"])}) for v in d["invitations"]
            ),
        }
    )


def encode_change(change: Change) -> str:
    return json.dumps(_plain(change), separators=(",", ":"), sort_keys=True)


def decode_change(doc: str) -> Change:
    d = json.loads(doc)
    return Change(
        ChangeType(d["type"]),
        d["time_ms"],
        d["creator_uid"],
        item=_item(d["item"]) if d.get("item") else None,
        resource=_resource(d["resource"]) if d.get("resource") else None,
    )
