"""The organisation's partners and release policies in the cluster's state bucket (issue 17):
the adapter (the record and its merge: ``accord.cluster.partners_state``).

- :meth:`PartnersSync.open`: the first node seeds the record with its own partners (a KV
  create: the first one wins); every later node takes the record as it is.
- :meth:`PartnersSync.local_changed`: what the operator changed in this node's files is laid
  over the cluster's current record and written back (compare-and-set on its revision: two
  nodes changing different partners at once both keep their change).
- :meth:`PartnersSync.watch_loop`: every version of the record (this node's own too) is handed
  to ``apply``, which validates it as a single server validates its files and puts it in
  force, or refuses it (the last good one stays in force).

A record not of the documented shape is refused and counted (``bad``), never applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from accord.cluster.partners_state import PARTNERS_KEY, Doc, decode_doc, encode_doc, rebase
from accord.cluster.state import StateError
from accord.cluster.sync import KV_DELETES, watch_entries
from accord.domain.views import Sample

log = logging.getLogger("accord.cluster")

CAS_ATTEMPTS = 8  # another node wrote the record between our read and our write: read again


class PartnersSync:
    """One node's view of the organisation's partners record."""

    def __init__(self, kv: Any, apply: Callable[[Doc], bool]) -> None:
        self._kv = kv
        self._apply = apply  # True: in force; False: refused (it said why)
        self.local: Doc = {}  # this node's files as last shared
        self.good: Doc = {}  # the record last put in force here
        self.bad: Doc | None = None  # the record last refused here
        self.unshared = False  # a local change not written yet (NATS trouble): tried again
        # Counters.
        self.published = 0  # versions of the record this node wrote
        self.applied = 0  # versions put in force here
        self.refused = 0  # versions refused (bad shape, bad policy): the last good one stays
        self.errors = 0  # bucket operations that failed (tried again)
        self.rewatches = 0

    async def open(self, local: Doc) -> tuple[Doc, bool]:
        """(the cluster's record, whether this node seeded it). :class:`StateError` when the
        record is not of the documented shape."""
        self.local = dict(local)
        try:
            await self._kv.create(PARTNERS_KEY, encode_doc(local))
            self.published += 1
            self.good = dict(local)
            return dict(local), True
        except KeyWrongLastSequenceError:
            entry = await self._kv.get(PARTNERS_KEY)
        doc = decode_doc(entry.value)
        self.good = dict(doc)
        return doc, False

    async def local_changed(self, now: Doc) -> bool:
        """This node's files now hold ``now``: write what changed since they were last
        shared. True when written (or nothing to write)."""
        if now == self.local and not self.unshared:
            return True
        for _ in range(CAS_ATTEMPTS):
            try:
                try:
                    entry = await self._kv.get(PARTNERS_KEY)
                    revision: int | None = entry.revision
                    try:
                        current = decode_doc(entry.value)
                    except StateError:
                        current = self.good
                    if current == self.bad:  # a refused record is not built on: the last good
                        current = self.good
                except KeyNotFoundError:  # deleted by hand: this node's change starts it again
                    entry, revision, current = None, None, self.good
                merged = rebase(current, self.local, now)
                if entry is not None and merged == current:
                    break
                if revision is None:
                    await self._kv.create(PARTNERS_KEY, encode_doc(merged))
                else:
                    await self._kv.update(PARTNERS_KEY, encode_doc(merged), last=revision)
                self.published += 1
                break
            except KeyWrongLastSequenceError:
                continue
            except Exception as exc:  # NATS down: the next poll tries again
                self.errors += 1
                if not self.unshared:  # one line per outage, not one per poll
                    log.warning("cluster: partners and release policies not shared yet: %s", exc)
                self.unshared = True
                return False
        else:
            self.errors += 1
            self.unshared = True
            return False
        self.local = dict(now)
        self.unshared = False
        return True

    async def watch_loop(self) -> None:
        """Run by the owner: every version of the record, to ``apply``."""

        def watched(entry: Any) -> None:
            if entry is None or entry.key != PARTNERS_KEY or entry.operation in KV_DELETES:
                return  # (a deleted record: what is in force stays, the next change rewrites it)
            self.remote(entry.value)

        await watch_entries(self._kv, watched, self._rewatch)

    def remote(self, value: bytes | None) -> None:
        try:
            doc = decode_doc(value)
        except StateError as exc:
            self.refused += 1
            log.error("cluster: partners record refused, those in force stay: %s", exc)
            return
        if doc == self.good:
            return  # what is in force already (this node's own write, a watch made again)
        if self._apply(doc):
            self.good = doc
            self.applied += 1
        else:
            self.bad = doc
            self.refused += 1

    def _rewatch(self) -> None:
        self.rewatches += 1

    def samples(self) -> list[Sample]:
        values = (
            ("cluster_partners_published_total", "partners records written here", self.published),
            ("cluster_partners_applied_total", "partners records put in force", self.applied),
            ("cluster_partners_refused_total", "partners records refused", self.refused),
            ("cluster_partners_errors_total", "partners sharing that failed", self.errors),
            ("cluster_partners_rewatches_total", "partners watches made again", self.rewatches),
        )  # fmt: skip
        return [Sample(n, "counter", h, float(v)) for n, h, v in values]
