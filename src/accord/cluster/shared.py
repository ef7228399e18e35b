"""Users and certificates shared by a cluster's nodes (issue 17): the adapter.

The organisation's state bucket is the one source of truth (``user.<name>``,
``cert.<serial>``; see ``accord.cluster.state`` for the merges). Each node keeps its
``users.json`` and ``pki/issued.json`` as copies, so every reader there (the TLS listener's
groups, password sign-in, bearer tokens, the admin API, ``accord user``/``accord cert`` run on
that host) works unchanged:

- a change to the files (looked at every ``POLL_S``: one ``stat`` each) is written to the
  bucket;
- a change in the bucket (a KV watch) is written to the files at once, and ``changed`` is set,
  so the identity watcher applies it now rather than at its next round: a user added, a
  password changed or a certificate revoked on node A takes effect on node B within the bound
  of one server (``revocation_check_s``), the revoked certificate's sessions cut and its next
  handshake refused.

Bad records in the bucket are dropped and counted (``bad``), never applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from accord.cluster.state import (
    CERT_PREFIX,
    USER_PREFIX,
    Row,
    StateError,
    UserMerge,
    canonical,
    cert_key,
    cert_serial,
    check_row,
    key_name,
    merge_certs,
    user_key,
)
from accord.cluster.sync import KV_DELETES, still_wanted, stop_watch, watch_entries
from accord.identity import registry
from accord.identity.ca import PkiError, PkiPaths
from accord.identity.users import UserStore, UserStoreError

log = logging.getLogger("accord.cluster")

POLL_S = 0.25  # how often the files are looked at (a stat each)

_Signature = tuple[int, int, int] | None


def _stamp(path: Path) -> _Signature:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class SharedState:
    """One node's copy of the organisation's users and certificates."""

    def __init__(self, kv: Any, data_dir: Path, pki: PkiPaths) -> None:
        self._kv = kv
        self._users = UserStore(data_dir)
        self._pki = pki
        self._merge = UserMerge()
        self._certs: dict[str, Row] = {}  # the bucket's rows, by serial
        self._index_stamp: _Signature = None
        self.rewatches = 0  # watches made again (their consumer was lost)
        self._users_unshared = False  # a push failed: the poll tries again
        self.changed = asyncio.Event()  # set when the files were changed from the bucket
        # Counters.
        self.pushed = 0  # records written to the bucket
        self.applied = 0  # records of other nodes written to this node's files
        self.bad = 0  # bucket records refused
        self.errors = 0  # bucket or file operations that failed (tried again)

    async def open(self) -> None:
        """Join: take the bucket's users (or seed it with ours), merge the certificates."""
        watcher = await self._kv.watchall()
        users: dict[str, bytes] = {}
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.operation in KV_DELETES:
                    continue
                if entry.key.startswith(USER_PREFIX):
                    with contextlib.suppress(StateError):
                        users[key_name(entry.key, USER_PREFIX)] = entry.value or b""
                elif entry.key.startswith(CERT_PREFIX):
                    self._cert_record(entry.value)
        finally:
            await stop_watch(watcher)
        plan = self._merge.adopt(users, self._users.entries())
        if plan.file:
            self._users.apply_entries(plan.file)
            log.info("cluster: %d users taken from the cluster", len(plan.file))
        for name, entry in plan.push.items():
            await self._push_user(name, entry)
        await self._sync_certs()

    # -- loops (run by the owner) --------------------------------------------------------------
    async def poll_loop(self) -> None:
        """The files changed here (the CLI, the admin API, enrollment): tell the bucket."""
        while True:
            still_wanted()
            await asyncio.sleep(POLL_S)
            try:
                if self._users.reload_if_changed() or self._users_unshared:
                    self._users_unshared = False
                    plan = self._merge.local_changed(self._users.entries())
                    for name, entry in plan.push.items():
                        await self._push_user(name, entry)
            except UserStoreError as exc:
                self.errors += 1
                log.warning("cluster: users not shared: %s", exc)
            if _stamp(registry.index_path(self._pki)) != self._index_stamp:
                await self._sync_certs()

    async def watch_loop(self) -> None:
        """What other nodes changed: into this node's files (a watch made again reads the
        current values again: what is already here is a no-op)."""

        def watched(entry: Any) -> None:
            if entry is not None:
                self._remote(entry.key, entry.value, entry.operation in KV_DELETES)

        await watch_entries(self._kv, watched, self._rewatch)

    def _rewatch(self) -> None:
        self.rewatches += 1

    # -- inside --------------------------------------------------------------------------------
    def _remote(self, key: str, value: bytes | None, deleted: bool) -> None:
        try:
            if key.startswith(USER_PREFIX):
                name = key_name(key, USER_PREFIX)
                plan = self._merge.remote(name, None if deleted else value, self._users.entries())
                if plan.file:
                    self._users.apply_entries(plan.file)
                    self.applied += 1
                    self.changed.set()
            elif key.startswith(CERT_PREFIX) and not deleted and self._cert_record(value):
                unshared = self._apply_certs()
                if unshared:
                    # The index holds rows the bucket lacks (a revocation made here just now):
                    # the next poll pushes them, though the index is as this write left it.
                    self._index_stamp = None
        except (StateError, UserStoreError) as exc:  # a record not of the file's shape
            self.bad += 1
            log.warning("cluster: shared record %s refused: %s", key, exc)
        except PkiError as exc:
            self.errors += 1
            log.error("cluster: shared record %s not applied: %s", key, exc)

    def _cert_record(self, value: bytes | None) -> bool:
        """Hold a certificate row of the bucket; True when it is new or newly revoked."""
        try:
            row = check_row(json.loads(value or b""))
        except (ValueError, StateError) as exc:
            self.bad += 1
            log.warning("cluster: certificate record refused: %s", exc)
            return False
        serial = cert_serial(row)
        known = self._certs.get(serial)
        self._certs[serial] = row
        return known is None or known.get("revoked_at", "") != row.get("revoked_at", "")

    def _apply_certs(self) -> dict[str, Row]:
        """Merge the bucket's rows into the index (the CRL re-signed on a revocation)."""
        plan_push: dict[str, Row] = {}
        revoked: set[str] = set()

        def change(rows: list[dict[str, str]]) -> list[dict[str, str]] | None:
            plan = merge_certs(rows, self._certs)
            plan_push.update(plan.push)
            revoked.update(plan.revoked)
            return plan.file

        if registry.update_index(self._pki, change, dt.datetime.now(dt.UTC)):
            self.applied += 1
            self.changed.set()
            if revoked:
                log.info("cluster: %d certificates revoked on other nodes", len(revoked))
        self._index_stamp = _stamp(registry.index_path(self._pki))
        return plan_push

    async def _sync_certs(self) -> None:
        try:
            push = self._apply_certs()
        except (PkiError, StateError) as exc:
            self.errors += 1
            log.error("cluster: certificates not shared: %s", exc)
            return
        for serial, row in push.items():
            try:
                await self._kv.put(cert_key(serial), canonical(row))
                self._certs[serial] = row
                self.pushed += 1
            except Exception as exc:  # NATS down: the next change of the index tries again
                self.errors += 1
                self._index_stamp = None
                log.warning("cluster: certificate %s not shared: %s", serial, exc)

    async def _push_user(self, name: str, entry: bytes | None) -> None:
        try:
            if entry is None:
                await self._kv.delete(user_key(name))
            else:
                await self._kv.put(user_key(name), entry)
            self.pushed += 1
        except Exception as exc:  # NATS down: the next poll tries again
            self.errors += 1
            self._users_unshared = True
            # What was agreed no longer matches the file for this user, so it is pushed again.
            if entry is None:
                self._merge.base[name] = b""
            else:
                self._merge.base.pop(name, None)
            log.warning("cluster: user %s not shared: %s", name, exc)
