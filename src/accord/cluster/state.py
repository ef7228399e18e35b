"""Shared state of a cluster's nodes, pure parts (issue 17): who may join, and how users and
certificates are merged between the nodes' files and the organisation's KV bucket.

**Joining.** The first node of an organisation writes the cluster's identity (``Member``: the
schema version and the SHA-256 of its CA certificate) under ``cluster`` in the state bucket;
every later node compares its own and refuses to start on a mismatch (:func:`join_refusal`):
a node of another CA would refuse every other node's clients, one of another schema version
would read and write the shared records differently.

**Users and certificates.** The state bucket is the one source of truth: ``user.<name>`` holds a
user's entry as ``users.json`` spells it, ``cert.<serial>`` a certificate's row of
``issued.json``. Each node keeps its files as a copy (so the CLI and every existing reader go
on working) and reconciles them with the bucket:

- users are merged three ways against what was last agreed (:class:`UserMerge`): what changed
  in the file since is written to the bucket, what changed in the bucket is written to the file;
- certificates are a grow-only set: rows are never deleted, and a revocation always wins
  (:func:`merge_certs`), so two nodes can never undo each other's revocation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from accord.cluster.subjects import BusHeaderError, kv_token, kv_untoken

CLUSTER_KEY = "cluster"
USER_PREFIX = "user."
CERT_PREFIX = "cert."


class StateError(ValueError):
    """A state record that is not of the documented shape."""


# -- joining -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """What every node of one cluster must share."""

    node: str
    schema: int  # the number of schema migrations this Accord ships
    ca: str  # SHA-256 of the CA certificate (DER), hex


def ca_fingerprint(ca_pem: bytes) -> str:
    """The SHA-256 of the (first) certificate in ``ca_pem``, over its DER bytes."""
    lines = [ln.strip() for ln in ca_pem.decode("ascii", "replace").splitlines()]
    try:
        begin = lines.index("-----BEGIN CERTIFICATE-----")
        end = lines.index("-----END CERTIFICATE-----", begin)
        der = base64.b64decode("".join(lines[begin + 1 : end]), validate=True)
    except (ValueError, binascii.Error):
        raise StateError("the CA file holds no PEM certificate") from None
    return hashlib.sha256(der).hexdigest()


def encode_member(member: Member) -> bytes:
    return json.dumps({"node": member.node, "schema": member.schema, "ca": member.ca}).encode()


def decode_member(data: bytes) -> Member:
    try:
        doc = json.loads(data)
        member = Member(str(doc["node"]), int(doc["schema"]), str(doc["ca"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise StateError(f"the cluster record is not of the documented shape ({exc})") from None
    return member


def join_refusal(me: Member, cluster: Member, org: str) -> str | None:
    """One line saying why ``me`` may not join ``org``'s cluster, or None when it may."""
    if me.schema != cluster.schema:
        return (
            f"node {me.node} cannot join cluster {org}: it has schema version {me.schema}, "
            f"the cluster has {cluster.schema} (first joined by {cluster.node}); "
            "run the same Accord version on every node"
        )
    if me.ca != cluster.ca:
        return (
            f"node {me.node} cannot join cluster {org}: its CA (sha256 {me.ca[:16]}...) is not "
            f"the cluster's (sha256 {cluster.ca[:16]}..., first joined by {cluster.node}); "
            "copy the cluster's pki/ into this node's data directory"
        )
    return None


# -- keys --------------------------------------------------------------------------------------


def user_key(name: str) -> str:
    return USER_PREFIX + kv_token(name)


def cert_key(serial: str) -> str:
    """Serials compare as numbers: the key is upper-case hex without leading zeros."""
    return CERT_PREFIX + f"{int(serial, 16):X}"


def key_name(key: str, prefix: str) -> str:
    try:
        return kv_untoken(key[len(prefix) :])
    except BusHeaderError as exc:
        raise StateError(str(exc)) from None


# -- users: a three-way merge ------------------------------------------------------------------

Entries = Mapping[str, bytes]  # user name -> its entry (canonical JSON)


def canonical(entry: object) -> bytes:
    """One spelling of a JSON value, so equal entries compare equal as bytes."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class UserPlan:
    """What a reconcile does: ``push`` to the bucket, ``file`` to the users file (for both,
    None as a value removes that user)."""

    push: dict[str, bytes | None]
    file: dict[str, bytes | None]


class UserMerge:
    """The users agreed with the bucket (``base``), and the plans that keep both sides equal.

    A change on both sides to one user since the last agreement: the bucket's wins (it was
    made on another node and is already everyone else's truth)."""

    def __init__(self) -> None:
        self.base: dict[str, bytes] = {}

    def adopt(self, shared: Entries, local: Entries) -> UserPlan:
        """Joining: a bucket that holds users is the truth (``local`` is overwritten); an empty
        one is seeded from ``local`` (the first node of a cluster brings its users)."""
        if shared:
            self.base = dict(shared)
            file: dict[str, bytes | None] = {n: e for n, e in shared.items() if local.get(n) != e}
            file.update({n: None for n in local if n not in shared})
            return UserPlan({}, file)
        self.base = dict(local)
        return UserPlan(dict(local), {})

    def local_changed(self, local: Entries) -> UserPlan:
        """The file changed (the CLI, the admin API): what differs from ``base`` is pushed."""
        push: dict[str, bytes | None] = {
            name: entry for name, entry in local.items() if self.base.get(name) != entry
        }
        push.update({name: None for name in self.base if name not in local})
        self.base = dict(local)
        return UserPlan(push, {})

    def remote(self, name: str, entry: bytes | None, local: Entries) -> UserPlan:
        """The bucket says ``name`` is now ``entry`` (None: removed): the file follows."""
        if entry is None:
            self.base.pop(name, None)
        else:
            self.base[name] = entry
        if local.get(name) == entry:
            return UserPlan({}, {})
        return UserPlan({}, {name: entry})


# -- certificates: grow-only, revocation wins ---------------------------------------------------

Row = dict[str, str]  # a row of issued.json (every field a string)
ROW_FIELDS = frozenset({"name", "kind", "serial", "not_after", "revoked_at", "pem"})


def check_row(row: object) -> Row:
    """A certificate row from the bucket, checked: :class:`StateError` when it is not one."""
    if not isinstance(row, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in row.items()
    ):
        raise StateError("a certificate row must be an object of strings")
    unknown = set(row) - ROW_FIELDS
    missing = {"name", "kind", "serial", "not_after"} - set(row)
    if unknown or missing:
        raise StateError(f"certificate row: unknown {sorted(unknown)}, missing {sorted(missing)}")
    cert_serial(row)
    return dict(row)


def cert_serial(row: Mapping[str, str]) -> str:
    serial = row.get("serial", "")
    try:
        return f"{int(serial, 16):X}"
    except ValueError:
        raise StateError(f"{serial!r} is not a hexadecimal serial") from None


def merge_cert(mine: Row | None, theirs: Row) -> Row:
    """One certificate's row as two sides know it: a revoked side wins (the earliest
    revocation, when both are)."""
    if mine is None:
        return dict(theirs)
    mine_at, theirs_at = mine.get("revoked_at", ""), theirs.get("revoked_at", "")
    if theirs_at and (not mine_at or theirs_at < mine_at):
        return {**mine, "revoked_at": theirs_at}
    return dict(mine)


@dataclass(frozen=True, slots=True)
class CertPlan:
    push: dict[str, Row]  # serial -> a row the bucket lacks, or holds less revoked
    file: list[Row] | None  # the index afterwards, when it must change
    revoked: frozenset[str]  # serials the index did not have revoked and now does


def merge_certs(local: list[Row], shared: Mapping[str, Row]) -> CertPlan:
    """The index and the bucket's rows brought together: the union, revocations winning."""
    merged: dict[str, Row] = {}
    for row in local:
        serial = cert_serial(row)
        merged[serial] = merge_cert(merged.get(serial), row)
    before = {s: dict(r) for s, r in merged.items()}
    for serial, row in shared.items():
        merged[serial] = merge_cert(merged.get(serial), row)
    push = {
        s: r
        for s, r in merged.items()
        if s not in shared or r.get("revoked_at", "") != shared[s].get("revoked_at", "")
    }
    was_revoked = {s for s, r in before.items() if r.get("revoked_at")}
    revoked = frozenset(s for s, r in merged.items() if r.get("revoked_at")) - was_revoked
    return CertPlan(push, None if before == merged else list(merged.values()), revoked)
