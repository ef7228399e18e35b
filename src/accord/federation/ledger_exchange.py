"""The ledger exchange between two Accord partners: each side witnesses the other's log.

Runs over the link's ROL streams (opened only with a partner that announced
``ACCORD_LEDGER``; a TAK Server never sees these programs). Per partner:

- **As sender**: on each stored checkpoint of our ``out`` log (and on hello, for what the
  partner lacks) send it with the leaf hashes the partner does not hold and the entries of
  the items released since the last receipt; store the partner's cosignature over it and its
  receipts, after checking both with the partner's ledger key and the receipts' leaves against
  our log. ``accord ledger verify`` then checks them again.
- **As receiver**: keep a copy of the partner's leaf hashes (:class:`PartnerLog`), check each
  checkpoint against it (signature, origin, root over the copy, released entries hashing to
  their leaves), cosign it, and receipt each released item once its frame has arrived (our
  mirror index); items released but not arrived are counted until they do.

The partner's ledger key is the one pinned in ``pki/partners/<partner>.vkey`` (by ``accord
partner add --ledger-key``); without one, the key the partner presents is pinned on first use
and a different one later is refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import DecodeError

from accord.domain.views import Sample
from accord.federation.journal import LedgerJournal
from accord.federation.proto import fig_pb2
from accord.identity.ca import PkiError
from accord.identity.ledger_key import partner_verifier, pin_partner_key
from accord.ledger.checkpoint import cosign, verify_cosignature
from accord.ledger.entry import Direction
from accord.ledger.exchange import (
    CHECKPOINT,
    HELLO,
    RECEIPTS,
    CheckpointMessage,
    ExchangeError,
    Hello,
    PartnerLog,
    ReceiptsMessage,
    Released,
    decode_checkpoint_message,
    decode_hello,
    decode_receipts,
    encode_checkpoint,
    encode_hello,
    encode_receipts,
    kind_of,
    program,
)
from accord.ledger.note import NoteError, Verifier, decode_vkey
from accord.ledger.receipt import BATCH_ITEMS, Receipt, open_receipts, sign_receipts
from accord.store.contract import Store, StoreError
from accord.store.records import LEDGER_PAGE, LedgerCosignature, LedgerReceipt

log = logging.getLogger("accord.ledger")

SEEN_ITEMS = 200_000  # received items remembered per partner, to receipt them
WAITING_ITEMS = 100_000  # released by the partner, not arrived yet, remembered at most
# Entries per checkpoint message when catching a partner up: ~0.2 MB of leaf hashes and at
# most ~2 MB of released entries, inside gRPC's message limit.
CHUNK_ENTRIES = 5_000
SENT_NOTES = 64  # checkpoints awaiting the partner's cosignature, remembered at most
RECEIPTS_S = 1.0  # receipts for late arrivals go out at most this late


def rol(kind: str, payload: bytes) -> bytes:
    """One ROL message of ours, serialised."""
    blob = fig_pb2.BinaryBlob(type=fig_pb2.OTHER, data=payload)
    return fig_pb2.ROL(program=program(kind), payload=[blob]).SerializeToString()


@dataclass(slots=True)
class _Peer:
    send: Callable[[bytes], None] | None = None  # the ROL stream to the partner, while open
    key: Verifier | None = None
    refused: str = ""  # why its ledger messages are not taken ("" when they are)
    has: int | None = None  # entries of our out log the partner holds (from its hello)
    receipted: int = 0  # our out entries before this one all have receipts
    copy: PartnerLog | None = None  # its out log, as far as we hold it
    seen: OrderedDict[str, int] = field(default_factory=OrderedDict)  # item -> mirror index
    waiting: OrderedDict[str, Released] = field(default_factory=OrderedDict)
    ready: list[tuple[Released, int]] = field(default_factory=list)  # to receipt
    cosigned: int = 0  # size of our newest checkpoint the partner cosigned
    # Our checkpoints sent and not yet cosigned, by size: the cosignature is checked against
    # the note itself, without reading every stored checkpoint per message.
    sent: dict[int, bytes] = field(default_factory=dict)
    receipts: int = 0  # items of ours the partner receipted (this run)
    errors: int = 0


class LedgerExchange:
    def __init__(
        self,
        journal: LedgerJournal,
        store: Store,
        pki_root: Path,
        *,
        wall_ms: Callable[[], int],
    ) -> None:
        self._journal = journal
        self._store = store
        self._pki_root = pki_root
        self._wall_ms = wall_ms
        self._peers: dict[str, _Peer] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        journal.on_checkpoint = self._checkpointed
        journal.on_received = self._received

    def _peer(self, partner: str) -> _Peer:
        peer = self._peers.get(partner)
        if peer is None:
            peer = self._peers[partner] = _Peer()
            try:
                peer.key = partner_verifier(self._pki_root, partner)
            except PkiError as exc:
                peer.refused = str(exc)
        return peer

    # -- the link --------------------------------------------------------------------------
    def opened(self, partner: str, send: Callable[[bytes], None]) -> None:
        """The ROL stream to ``partner`` is open: say hello."""
        peer = self._peer(partner)
        peer.send = send
        key = self._journal.signer.verifier.vkey()
        send(rol(HELLO, encode_hello(Hello(key, peer.copy.size if peer.copy else 0))))

    def closed(self, partner: str, send: Callable[[bytes], None]) -> None:
        """The ROL stream that ``send`` wrote to is gone (a partner both sides dial has two:
        the other may still be open)."""
        peer = self._peer(partner)
        if peer.send == send:
            peer.send, peer.has = None, None

    async def receive(self, partner: str, message: bytes) -> None:
        """One ROL message from ``partner``; anything not ours is ignored."""
        try:
            msg = fig_pb2.ROL.FromString(message)
        except DecodeError:
            log.warning("partner %s: a ROL message that does not decode", partner)
            return
        kind = kind_of(msg.program)
        if kind is None or len(msg.payload) != 1:
            return
        peer = self._peer(partner)
        data = msg.payload[0].data
        try:
            if kind == HELLO:
                await self._hello(partner, peer, decode_hello(data))
            elif peer.refused:
                return
            elif kind == CHECKPOINT:
                self._checkpoint(partner, peer, decode_checkpoint_message(data))
            elif kind == RECEIPTS:
                await self._receipts(partner, peer, decode_receipts(data))
        except (ExchangeError, NoteError, StoreError) as exc:
            peer.errors += 1
            log.error("ledger exchange with %s: %s: %s", partner, kind, exc)

    # -- hello -----------------------------------------------------------------------------
    async def _hello(self, partner: str, peer: _Peer, hello: Hello) -> None:
        try:
            key = decode_vkey(hello.key)
        except NoteError as exc:
            raise ExchangeError(f"its ledger key: {exc}") from None
        if peer.key is None and not peer.refused:
            try:
                pin_partner_key(self._pki_root, partner, key)
            except PkiError as exc:
                peer.refused = str(exc)
            else:
                peer.key = key
                log.info("partner %s: ledger key %s pinned on first use", partner, key.vkey())
        elif peer.key is not None and peer.key.vkey() != key.vkey():
            peer.refused = (
                f"it presents ledger key {key.vkey()}, pinned is {peer.key.vkey()} "
                f"(pki/partners/{partner}.vkey)"
            )
        if peer.refused:
            log.error("ledger exchange with %s refused: %s", partner, peer.refused)
            return
        if peer.copy is None and peer.key is not None:
            peer.copy = PartnerLog(peer.key)
            await self._remember_received(partner, peer)
        peer.receipted = await self._store.ledger_receipted(partner, Direction.OUT.value)
        cosigned = await self._store.ledger_cosignatures(partner, Direction.OUT.value)
        peer.cosigned = max((c.size for c in cosigned), default=0)
        stored, _ = self._journal.latest_checkpoint(partner, Direction.OUT)
        if hello.have > stored and hello.have > self._journal.size(partner, "out"):
            raise ExchangeError(
                f"it holds {hello.have} entries of our log, we have "
                f"{self._journal.size(partner, 'out')} (was our ledger reset?)"
            )
        peer.has = hello.have
        self._wake.set()

    async def _remember_received(self, partner: str, peer: _Peer) -> None:
        """After a restart: the items of our newest stored mirror entries, to receipt what
        the partner resends about them (parsed in a thread: up to SEEN_ITEMS entries)."""
        size = self._journal.size(partner, Direction.IN.value)
        start = max(0, size - SEEN_ITEMS)
        while start < size:
            page = await self._store.ledger_entries(partner, Direction.IN.value, start, LEDGER_PAGE)
            if not page:
                break
            found = await asyncio.to_thread(_items, [(row.seq, row.data) for row in page])
            for item, index in found:
                peer.seen.setdefault(item, index)  # what arrived since start is newer
            start = page[-1].seq + 1

    # -- as sender -------------------------------------------------------------------------
    def _checkpointed(self, partner: str, direction: Direction) -> None:
        if direction is Direction.OUT:  # the run loop sends it (latest_checkpoint)
            self._wake.set()

    async def _catch_up(self, partner: str, peer: _Peer) -> None:
        """Send the partner our newest checkpoint and what it needs to check it; a partner far
        behind gets it in steps, each ending at a stored checkpoint (one gRPC message each)."""
        size, note = self._journal.latest_checkpoint(partner, Direction.OUT)
        if peer.send is None or peer.has is None or size <= peer.has:
            return
        if size - peer.has > CHUNK_ENTRIES:
            stored = await self._store.ledger_checkpoints(partner, Direction.OUT.value)
            while (
                peer.send is not None and peer.has is not None and size - peer.has > CHUNK_ENTRIES
            ):
                ahead = [c for c in stored if peer.has < c.size < size]
                if not ahead:
                    break
                within = [c for c in ahead if c.size <= peer.has + CHUNK_ENTRIES]
                step = within[-1] if within else ahead[0]
                await self._send_range(partner, peer, step.size, step.note)
        if peer.send is not None and peer.has is not None and size > peer.has:
            await self._send_range(partner, peer, size, note)

    async def _send_range(self, partner: str, peer: _Peer, size: int, note: bytes) -> None:
        assert peer.has is not None
        start = peer.has
        leaves: list[bytes] = []
        released: list[tuple[int, bytes]] = []
        index = start
        while index < size:
            page = await self._store.ledger_entries(
                partner, Direction.OUT.value, index, min(LEDGER_PAGE, size - index)
            )
            if not page:
                raise ExchangeError(f"our out log ends at {index}, its checkpoint at {size}")
            for row in page:
                leaves.append(row.leaf)
                # Receipts are wanted once: entries before peer.receipted already have one.
                if row.seq >= peer.receipted and b'"decision":"released"' in row.data:
                    released.append((row.seq, row.data))
            index = page[-1].seq + 1
        message = CheckpointMessage(note, start, tuple(leaves), tuple(released))
        if peer.send is not None:
            peer.send(rol(CHECKPOINT, encode_checkpoint(message)))
            peer.has = size
            peer.sent[size] = note
            while len(peer.sent) > SENT_NOTES:
                del peer.sent[next(iter(peer.sent))]

    async def _receipts(self, partner: str, peer: _Peer, msg: ReceiptsMessage) -> None:
        key = peer.key
        if key is None:
            raise ExchangeError("receipts before its hello: no key to check them with")
        if msg.error:
            peer.errors += 1
            log.error("partner %s did not cosign our checkpoint: %s", partner, msg.error)
        if msg.cosignature:
            note = peer.sent.pop(msg.size, None)
            if note is None:
                raise ExchangeError(
                    f"a cosignature for size {msg.size}: we sent no such checkpoint"
                )
            verify_cosignature(note, msg.cosignature, key)
            await self._store.add_ledger_cosignature(
                LedgerCosignature(partner, Direction.OUT.value, msg.size, msg.cosignature)
            )
            peer.cosigned = max(peer.cosigned, msg.size)
        if msg.receipts:
            items = open_receipts(msg.receipts, key)
            ours = self._journal.log_of(partner, Direction.OUT)
            for receipt in items:
                if receipt.origin != ours.origin:
                    raise ExchangeError(f"a receipt for log {receipt.origin!r}")
                if receipt.index >= ours.size or ours.tree.leaf(receipt.index) != receipt.leaf:
                    raise ExchangeError(
                        f"its receipt for our entry {receipt.index} names another leaf"
                    )
            last = max(r.index for r in items)
            # Keyed by the last entry it covers: the next hello starts receipts after it.
            await self._store.add_ledger_receipt(
                LedgerReceipt(partner, Direction.OUT.value, last, msg.receipts)
            )
            peer.receipts += len(items)
            peer.receipted = max(peer.receipted, last + 1)

    # -- as receiver -----------------------------------------------------------------------
    def _checkpoint(self, partner: str, peer: _Peer, msg: CheckpointMessage) -> None:
        copy = peer.copy
        if copy is None or peer.key is None or peer.send is None:
            return
        try:
            released = copy.accept(msg)
        except ExchangeError as exc:
            peer.errors += 1
            log.error("partner %s: its checkpoint does not add up: %s", partner, exc)
            peer.send(rol(RECEIPTS, encode_receipts(ReceiptsMessage(0, "", b"", str(exc)))))
            return
        for item in released:
            mirror = peer.seen.get(item.item)
            if mirror is not None:
                peer.ready.append((item, mirror))
            else:
                peer.waiting[item.item] = item
                while len(peer.waiting) > WAITING_ITEMS:
                    peer.waiting.popitem(last=False)
        line = cosign(msg.note, self._journal.signer, self._wall_ms() // 1000)
        size = copy.size
        peer.send(rol(RECEIPTS, encode_receipts(ReceiptsMessage(size, line, self._sign(peer), ""))))

    def _received(self, partner: str, item: str, mirror_index: int) -> None:
        # Remembered from the first frame: the event stream is open before the ROL stream,
        # and a reconnect resends the outbox before the partner's checkpoint arrives.
        peer = self._peer(partner)
        peer.seen[item] = mirror_index
        if len(peer.seen) > SEEN_ITEMS:
            peer.seen.popitem(last=False)
        if peer.waiting:
            released = peer.waiting.pop(item, None)
            if released is not None:
                peer.ready.append((released, mirror_index))
                self._wake.set()

    def _sign(self, peer: _Peer) -> bytes:
        """Receipts for what is ready (at most one note's worth), signed; b"" when none."""
        copy = peer.copy
        if not peer.ready or copy is None:
            return b""
        batch, peer.ready = peer.ready[:BATCH_ITEMS], peer.ready[BATCH_ITEMS:]
        now = self._wall_ms()
        receipts = [Receipt(copy.origin, r.index, r.leaf, mirror, now) for r, mirror in batch]
        return sign_receipts(receipts, self._journal.signer)

    # -- the task --------------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                async with asyncio.timeout(RECEIPTS_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            for partner, peer in list(self._peers.items()):
                try:
                    await self._catch_up(partner, peer)
                except (ExchangeError, StoreError) as exc:
                    peer.errors += 1
                    log.error("ledger exchange with %s: %s", partner, exc)
                if peer.ready and peer.send is not None and peer.copy is not None:
                    late = ReceiptsMessage(0, "", self._sign(peer), "")
                    peer.send(rol(RECEIPTS, encode_receipts(late)))

    # -- reporting -------------------------------------------------------------------------
    def samples(self) -> Iterable[Sample]:
        for partner, peer in sorted(self._peers.items()):
            labels = (("partner", partner),)
            yield Sample(
                "ledger_cosigned_entries",
                "gauge",
                "entries of our log towards the partner covered by its newest cosignature",
                float(peer.cosigned),
                labels,
            )
            yield Sample(
                "ledger_partner_entries",
                "gauge",
                "entries of the partner's log towards us that we hold and checked",
                float(peer.copy.size if peer.copy else 0),
                labels,
            )
            yield Sample(
                "ledger_unreceived_items",
                "gauge",
                "items the partner's log says it released to us that have not arrived",
                float(len(peer.waiting)),
                labels,
            )
            yield Sample(
                "ledger_exchange_errors_total",
                "counter",
                "ledger messages from or about the partner that did not add up",
                float(peer.errors),
                labels,
            )

    def view(self, partner: str) -> dict[str, object]:
        """For tests and the admin status."""
        peer = self._peer(partner)
        return {
            "cosigned": peer.cosigned,
            "receipts": peer.receipts,
            "partner_entries": peer.copy.size if peer.copy else 0,
            "unreceived": len(peer.waiting),
            "errors": peer.errors,
            "refused": peer.refused,
        }


def _items(rows: list[tuple[int, bytes]]) -> list[tuple[str, int]]:
    """(item, index) of stored mirror entries (their canonical form is `ledger verify`'s to
    check; here only the item is wanted)."""
    out = []
    for index, data in rows:
        try:
            item = json.loads(data).get("item")
        except (ValueError, AttributeError):
            continue
        if isinstance(item, str):
            out.append((item, index))
    return out
