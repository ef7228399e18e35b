"""Missions and changes to and from the JSON documents the store keeps (not the wire shapes:
those are in :mod:`accord.missions.shape`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
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
    """The mission without its items and files (those are :func:`encode_contents` rows: an
    edit then writes what changed, not every item again)."""
    plain = _plain(dataclasses.replace(mission, items={}, resources={}))
    return json.dumps(plain, separators=(",", ":"), sort_keys=True)


def content_key(content: Item | Resource) -> str:
    return f"uid:{content.uid}" if isinstance(content, Item) else f"hash:{content.hash}"


def encode_content(content: Item | Resource) -> str:
    return json.dumps(_plain(content), separators=(",", ":"), sort_keys=True)


def contents_diff(
    before: Mission | None, after: Mission
) -> tuple[list[tuple[str, str]], list[str]]:
    """What to write (key, doc) and what to remove (keys) to go from ``before``'s contents
    to ``after``'s; an entry that is the same object in both is not written again."""
    old_items = before.items if before is not None else {}
    old_res = before.resources if before is not None else {}
    put = [
        (content_key(v), encode_content(v))
        for table, old in ((after.items, old_items), (after.resources, old_res))
        for k, v in table.items()
        if old.get(k) is not v
    ]
    drop = [f"uid:{k}" for k in old_items if k not in after.items]
    drop += [f"hash:{k}" for k in old_res if k not in after.resources]
    return put, drop


def decode_mission(doc: str, contents: Iterable[tuple[str, str]] = ()) -> Mission:
    """A mission from its document and its content rows (key, doc)."""
    d = json.loads(doc)
    items: dict[str, Item] = {}
    resources: dict[str, Resource] = {}
    for key, body in contents:
        kind, _, name = key.partition(":")
        if kind == "uid":
            items[name] = _item(json.loads(body))
        else:
            resources[name] = _resource(json.loads(body))
    mission = Mission(
        **{
            **d,
            "groups": frozenset(d["groups"]),
            "default_role": Role(d["default_role"]),
            "keywords": tuple(d["keywords"]),
            "applied": tuple(d.get("applied", ())),
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
    if items or resources:
        mission = dataclasses.replace(
            mission, items={**mission.items, **items}, resources={**mission.resources, **resources}
        )
    return mission


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
