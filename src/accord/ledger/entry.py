"""One ledger entry and its canonical bytes (the Merkle leaf data).

Canonical form, version 1: UTF-8 JSON, keys sorted, no spaces, ASCII only, absent optional
fields left out. Released and received items are named by ``sha256:<hex>`` of the exact bytes
sent; withheld and dropped items only by ``hmac-sha256:<hex>`` under the sender's secret, so
the partner cannot confirm a guess about what it did not get (the key can be disclosed per
entry in a dispute).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from typing import Any

ENTRY_VERSION = 1


class EntryError(ValueError):
    """Bytes that are not a canonical ledger entry."""


class Direction(StrEnum):
    OUT = "out"  # our release decisions for the partner
    IN = "in"  # the mirror: what the partner sent us


class Decision(StrEnum):
    RELEASED = "released"
    WITHHELD = "withheld"  # the policy kept it back
    DROPPED = "dropped"  # released by policy but not sent (queue full, link down)
    RECEIVED = "received"  # mirror entries


_PLAIN = {Decision.RELEASED, Decision.RECEIVED}


def content_hash(data: bytes) -> str:
    """The item name of bytes that were sent (or received)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def keyed_hash(key: bytes, data: bytes) -> str:
    """The item name of bytes that were not sent."""
    return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int  # its index in the log, from 0
    time_ms: int
    direction: Direction
    partner: str
    decision: Decision
    rule: str  # the policy rule that decided ("" when none)
    item: str  # content_hash or keyed_hash
    policy: str = ""  # the policy (id or hash) in force
    partner_index: int | None = None  # mirror entries: the partner's own entry index
    partner_leaf: bytes | None = None  # mirror entries: the partner's leaf hash

    def __post_init__(self) -> None:
        plain = self.decision in _PLAIN
        if plain != self.item.startswith("sha256:") or (
            not plain and not self.item.startswith("hmac-sha256:")
        ):
            kind = "sha256:" if plain else "hmac-sha256:"
            raise EntryError(f"a {self.decision} item is named by {kind}…, not {self.item!r}")
        if (self.direction is Direction.IN) != (self.decision is Decision.RECEIVED):
            raise EntryError(
                f"decision {self.decision} does not belong in the {self.direction} log"
            )
        if self.seq < 0:
            raise EntryError(f"sequence {self.seq} is negative")


# The reference encoding (and the check in tests that the fast one below matches it).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical_json(entry: Entry) -> bytes:
    """:func:`encode_entry` through the json module: the definition of the canonical form."""
    obj: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "seq": entry.seq,
        "time_ms": entry.time_ms,
        "direction": entry.direction.value,
        "partner": entry.partner,
        "decision": entry.decision.value,
        "rule": entry.rule,
        "item": entry.item,
    }
    if entry.policy:
        obj["policy"] = entry.policy
    if entry.partner_index is not None:
        obj["partner_index"] = entry.partner_index
    if entry.partner_leaf is not None:
        obj["partner_leaf"] = entry.partner_leaf.hex()
    return _CANONICAL.encode(obj).encode()


def encode_entry(entry: Entry) -> bytes:
    """The canonical bytes, written out directly: the same bytes as :func:`canonical_json`
    (keys in sorted order, strings escaped by json's own ASCII escaper) at a third of the cost,
    on the hot path of every release and receipt."""
    parts = [
        '{"decision":"', entry.decision.value,
        '","direction":"', entry.direction.value,
        '","item":', _quoted(entry.item),
        ',"partner":', _quoted(entry.partner),
    ]  # fmt: skip
    if entry.partner_index is not None:
        parts += (',"partner_index":', str(int(entry.partner_index)))
    if entry.partner_leaf is not None:
        parts += (',"partner_leaf":"', entry.partner_leaf.hex(), '"')
    if entry.policy:
        parts += (',"policy":', _quoted(entry.policy))
    parts += (
        ',"rule":', _quoted(entry.rule),
        ',"seq":', str(int(entry.seq)),
        ',"time_ms":', str(int(entry.time_ms)),
        ',"v":', _VERSION, "}",
    )  # fmt: skip
    return "".join(parts).encode()


_VERSION = str(ENTRY_VERSION)
_quoted = encode_basestring_ascii  # json's C escaper (ensure_ascii), as JSONEncoder uses


@functools.lru_cache(maxsize=1024)
def _plain_parts(decision: Decision, partner: str, rule: str, policy: str) -> tuple[str, str, str]:
    """The text of a plain entry (released or received: no partner index or leaf) around its
    item hash, its seq and its time, by what a link repeats from entry to entry."""
    direction = Direction.IN if decision is Decision.RECEIVED else Direction.OUT
    head = f'{{"decision":"{decision.value}","direction":"{direction.value}","item":"sha256:'
    middle = f'","partner":{_quoted(partner)}'
    if policy:
        middle += f',"policy":{_quoted(policy)}'
    middle += f',"rule":{_quoted(rule)},"seq":'
    return head, middle, f',"v":{_VERSION}}}'


def encode_plain(
    decision: Decision, partner: str, rule: str, policy: str, digest: str, seq: int, time_ms: int
) -> bytes:
    """:func:`encode_entry` of ``Entry(seq, time_ms, <direction of decision>, partner, decision,
    rule, "sha256:" + digest, policy)`` for a released or received item (``digest``: the hex
    SHA-256 of the item's bytes), without building the entry: the link's hot path, one call per
    frame. The same bytes (a property test checks it against :func:`canonical_json`)."""
    if decision is not Decision.RELEASED and decision is not Decision.RECEIVED:
        raise EntryError(f"a {decision} item is not named by sha256:")
    if seq < 0:
        raise EntryError(f"sequence {seq} is negative")
    head, middle, tail = _plain_parts(decision, partner, rule, policy)
    return "".join(
        (head, digest, middle, str(int(seq)), ',"time_ms":', str(int(time_ms)), tail)
    ).encode()


def decode_entry(data: bytes) -> Entry:
    try:
        obj = json.loads(data)
        if not isinstance(obj, dict) or obj.get("v") != ENTRY_VERSION:
            raise EntryError(f"not a version {ENTRY_VERSION} entry")
        leaf = obj.get("partner_leaf")
        entry = Entry(
            seq=_int(obj["seq"]),
            time_ms=_int(obj["time_ms"]),
            direction=Direction(obj["direction"]),
            partner=_str(obj["partner"]),
            decision=Decision(obj["decision"]),
            rule=_str(obj["rule"]),
            item=_str(obj["item"]),
            policy=_str(obj.get("policy", "")),
            partner_index=None if obj.get("partner_index") is None else _int(obj["partner_index"]),
            partner_leaf=None if leaf is None else bytes.fromhex(_str(leaf)),
        )
    except EntryError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise EntryError(f"not a ledger entry ({exc!r})") from None
    if encode_entry(entry) != data:
        raise EntryError("not in canonical form")
    return entry


def _int(value: object) -> int:
    if type(value) is not int:
        raise EntryError(f"{value!r} is not an integer")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise EntryError(f"{value!r} is not a string")
    return value


_DECISION_ITEM = {d.value: "sha256:" if d in _PLAIN else "hmac-sha256:" for d in Decision}
_DIRECTION_OF = {
    d.value: Direction.IN if d is Decision.RECEIVED else Direction.OUT for d in Decision
}


def entry_fields(data: bytes) -> tuple[int, str, Direction, int | None]:
    """(seq, partner, direction, partner_index) of entry bytes: what replaying a log needs,
    about three times faster than :func:`decode_entry` (which it falls back on to name any
    problem). It does not re-encode to check the canonical form: the bytes are bound by their
    leaf hash and the signed checkpoints whatever their form, and re-encoding would double the
    cost of ``accord ledger verify``."""
    try:
        obj = json.loads(data)
        decision = obj["decision"]
        direction = _DIRECTION_OF[decision]
        if (
            obj["v"] == ENTRY_VERSION
            and obj["direction"] == direction.value
            and obj["item"].startswith(_DECISION_ITEM[decision])
            and type(obj["seq"]) is int
            and obj["seq"] >= 0
            and type(obj["time_ms"]) is int
            and type(obj["partner"]) is str
            and type(obj["rule"]) is str
            and len(obj)
            == 8 + ("policy" in obj) + ("partner_index" in obj) + ("partner_leaf" in obj)
            and json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() == data
        ):
            index = obj.get("partner_index")
            if index is None or type(index) is int:
                return obj["seq"], obj["partner"], direction, index
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    decode_entry(data)  # raises, naming what is wrong: it refuses whatever the checks refuse
    raise AssertionError("unreachable: decode_entry accepted an entry the quick checks refused")
