"""What two partners' ledgers tell each other over the link (reference drones-federation C5).

Three messages, each the JSON payload of one ROL program (a TAK Server never gets them: they
go only to a partner that announced the ledger extension):

- ``hello``: my ledger public key, and how much of your ``out`` log I hold;
- ``checkpoint``: my signed checkpoint of the ``out`` log for you, the leaf hashes you do not
  hold yet, and the whole entry of every item released in that range;
- ``receipts``: my cosignature over your checkpoint, and signed receipts for the released
  items I received (each: your index and leaf, my mirror index).

The receiver keeps a copy of the sender's leaf hashes (:class:`PartnerLog`), so it checks the
signed root itself: a sender that rewrote, dropped or reordered an entry it had already shown
cannot produce a root over the receiver's copy, and a released entry whose bytes do not hash to
what arrived is caught by the receipt that never comes. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from accord.ledger.checkpoint import Checkpoint, decode_checkpoint
from accord.ledger.entry import Decision, Direction
from accord.ledger.merkle import HASH_SIZE, Tree, leaf_hash
from accord.ledger.note import NoteError, Verifier, open_note

PROGRAM = "accord-ledger/v1"
HELLO, CHECKPOINT, RECEIPTS = "hello", "checkpoint", "receipts"
MAX_LEAVES = 1_000_000  # per checkpoint message: a partner back after a long outage resends


class ExchangeError(ValueError):
    """A ledger message that is malformed or does not add up; the message says which."""


@dataclass(frozen=True, slots=True)
class Hello:
    key: str  # the sender's ledger verifier key (name+keyid+base64)
    have: int  # entries of the receiver's out log the sender holds


@dataclass(frozen=True, slots=True)
class CheckpointMessage:
    note: bytes  # the signed checkpoint
    start: int  # index of the first leaf in ``leaves``
    leaves: tuple[bytes, ...]
    released: tuple[tuple[int, bytes], ...]  # (index, entry bytes) of released items


@dataclass(frozen=True, slots=True)
class ReceiptsMessage:
    size: int  # of the checkpoint cosigned (0: none)
    cosignature: str  # the cosignature line ("" when not cosigned)
    receipts: bytes  # a signed receipt note (b"" when none)
    error: str  # why the checkpoint was not cosigned ("" when it was)


def program(kind: str) -> str:
    return f"{PROGRAM} {kind}"


def kind_of(program_text: str) -> str | None:
    """The message kind of a ROL program of ours, or None for any other program."""
    head, _, kind = program_text.partition(" ")
    return kind if head == PROGRAM and kind in (HELLO, CHECKPOINT, RECEIPTS) else None


def encode_hello(hello: Hello) -> bytes:
    return _dump({"key": hello.key, "have": hello.have})


def encode_checkpoint(msg: CheckpointMessage) -> bytes:
    return _dump(
        {
            "note": msg.note.decode(),
            "start": msg.start,
            "leaves": base64.b64encode(b"".join(msg.leaves)).decode(),
            "released": [[i, base64.b64encode(d).decode()] for i, d in msg.released],
        }
    )


def encode_receipts(msg: ReceiptsMessage) -> bytes:
    return _dump(
        {
            "size": msg.size,
            "cosignature": msg.cosignature,
            "receipts": msg.receipts.decode(),
            "error": msg.error,
        }
    )


def decode_hello(data: bytes) -> Hello:
    obj = _load(data)
    return Hello(_str(obj, "key"), _count(obj, "have"))


def decode_checkpoint_message(data: bytes) -> CheckpointMessage:
    obj = _load(data)
    raw = _b64(_str(obj, "leaves"), "leaves")
    if len(raw) % HASH_SIZE or len(raw) // HASH_SIZE > MAX_LEAVES:
        raise ExchangeError(f"leaves: not a list of at most {MAX_LEAVES} hashes")
    leaves = tuple(raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE))
    released = obj.get("released")
    if not isinstance(released, list):
        raise ExchangeError("released: not a list")
    items: list[tuple[int, bytes]] = []
    for item in released:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], str)):
            raise ExchangeError("released: items are [index, base64 entry]")
        index = item[0]
        if type(index) is not int or index < 0:
            raise ExchangeError("released: index is not a natural number")
        items.append((index, _b64(item[1], "released entry")))
    return CheckpointMessage(_str(obj, "note").encode(), _count(obj, "start"), leaves, tuple(items))


def decode_receipts(data: bytes) -> ReceiptsMessage:
    obj = _load(data)
    return ReceiptsMessage(
        _count(obj, "size"),
        _str(obj, "cosignature"),
        _str(obj, "receipts").encode(),
        _str(obj, "error"),
    )


@dataclass(frozen=True, slots=True)
class Released:
    """An item the partner says it released to us, checked against its signed log."""

    index: int
    leaf: bytes
    item: str  # the content hash of the frame sent ("sha256:…")


class PartnerLog:
    """Our copy of a partner's ``out`` log towards us: its leaf hashes and latest checkpoint."""

    def __init__(self, key: Verifier) -> None:
        self.key = key
        self.tree = Tree()
        self.origin = ""  # pinned by the first checkpoint accepted
        self.checkpoint: Checkpoint | None = None

    @property
    def size(self) -> int:
        return self.tree.size

    def accept(self, msg: CheckpointMessage) -> list[Released]:
        """Check ``msg`` and take its leaves; the released items it names, checked.
        :class:`ExchangeError` (and nothing taken) when anything does not add up."""
        try:
            cp = decode_checkpoint(open_note(msg.note, self.key))
        except NoteError as exc:
            raise ExchangeError(f"checkpoint: {exc}") from None
        if not cp.origin.endswith(f"/{Direction.OUT.value}"):
            raise ExchangeError(f"checkpoint origin {cp.origin!r} is not an out log")
        if self.origin and cp.origin != self.origin:
            raise ExchangeError(f"checkpoint origin {cp.origin!r}, was {self.origin!r}")
        if self.checkpoint is not None and cp.size < self.checkpoint.size:
            raise ExchangeError(
                f"checkpoint at size {cp.size} after one at {self.checkpoint.size}: the log shrank"
            )
        if msg.start != self.size:
            raise ExchangeError(f"leaves start at {msg.start}; we hold {self.size}")
        if msg.start + len(msg.leaves) != cp.size:
            raise ExchangeError(
                f"{len(msg.leaves)} leaves from {msg.start} do not reach size {cp.size}"
            )
        tree = self.tree
        for leaf in msg.leaves:
            tree.append(leaf)
        if tree.root(cp.size) != cp.root:
            tree.truncate(msg.start)
            raise ExchangeError(
                f"checkpoint at size {cp.size}: its root is not the root of the leaves we "
                "hold and were sent (an entry already shown was changed, dropped or moved)"
            )
        released: list[Released] = []
        for index, data in msg.released:
            try:
                released.append(_released(index, data, msg.start, cp.size, tree))
            except ExchangeError:
                tree.truncate(msg.start)
                raise
        self.origin, self.checkpoint = cp.origin, cp
        return released


def _released(index: int, data: bytes, start: int, size: int, tree: Tree) -> Released:
    if not start <= index < size:
        raise ExchangeError(f"released entry {index} is outside this checkpoint")
    leaf = leaf_hash(data)
    if leaf != tree.leaf(index):
        raise ExchangeError(f"released entry {index} does not hash to its leaf")
    plain = _PLAIN_RELEASE.fullmatch(data)
    if plain is not None:
        # The canonical form of a release (what every Accord writes): the fields read off it
        # are what json.loads would give, without building the object.
        if int(plain.group(2)) != index:
            raise ExchangeError(f"entry {index} is not a release at that index")
        return Released(index, leaf, plain.group(1).decode())
    # Its bytes hash to the signed leaf, so only the fields we use are read (json.loads): the
    # full decode re-encodes to check the canonical form, which the sender's own `ledger
    # verify` checks, at three times the cost on a link's hot path.
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ExchangeError(f"released entry {index} is not JSON") from None
    item = obj.get("item") if isinstance(obj, dict) else None
    if (
        not isinstance(obj, dict)
        or obj.get("seq") != index
        or obj.get("decision") != Decision.RELEASED.value
        or not isinstance(item, str)
        or not item.startswith("sha256:")
    ):
        raise ExchangeError(f"entry {index} is not a release at that index")
    return Released(index, leaf, item)


# A release entry in canonical form (ledger.entry.encode_entry): sorted keys, no spaces, ASCII
# strings with JSON's escapes. Anything else is read by json.loads.
_JSON_STR = rb'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_NATURAL = rb"(?:0|[1-9][0-9]*)"
_PLAIN_RELEASE = re.compile(
    rb'\{"decision":"released","direction":"out","item":"(sha256:[0-9a-f]{64})",'
    rb'"partner":' + _JSON_STR + rb'(?:,"policy":' + _JSON_STR + rb")?"
    rb',"rule":' + _JSON_STR + rb',"seq":(' + _NATURAL + rb'),"time_ms":' + _NATURAL + rb',"v":1\}'
)


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _load(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ExchangeError("not JSON") from None
    if not isinstance(obj, dict):
        raise ExchangeError("not a JSON object")
    return obj


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ExchangeError(f"{key}: not a string")
    return value


def _count(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if type(value) is not int or value < 0:
        raise ExchangeError(f"{key}: not a natural number")
    return value


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ExchangeError(f"{what}: not base64") from None
