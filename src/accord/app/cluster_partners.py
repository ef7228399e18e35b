"""Composition of the organisation's partners and release policies in a cluster (issue 17).

On one server the partners are read at start (the config file's ``[[partners]]`` and
``<data_dir>/partners.toml``) and the release policies at start and on SIGHUP. In a cluster the
state bucket's ``partners`` record is the one source of truth (``accord.cluster.partners_sync``):

- at start, the first node seeds it with its own; every later node uses the cluster's, and
  says so in one line when its own files differ;
- this node's operator changes them as on one server (``accord partner add|remove``, which
  writes ``partners.toml``, noticed within ``POLL_S``; a policy file edited in place and
  SIGHUP): the change is checked exactly as a single server checks it at start, then
  published (a bad one is refused here with one line and not published);
- every version of the record (this node's own too) is written to
  ``<data_dir>/cluster/partners/`` and checked through the same loader a single server uses
  (``load_policies``); a bad one is refused with one line and the last good one stays in
  force. A good one is put in force: the gate's policies when this node runs the links, the
  partners that the next holder of the partner-link lease starts, and, when the partners
  themselves changed (not only their policies), the links on this node brought up again.

Each node keeps ``partners.toml`` (and the ``partners/<name>-ca.pem``,
``partners/<name>-policy.toml`` copies ``accord partner add`` keeps) as a copy of the record,
as it keeps ``users.json``: ``accord partner list|remove`` and editing a policy copy then
SIGHUP work on any node. Partners of a node's config file are never rewritten there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accord.app.partners import read_partners
from accord.app.running import Running, StartupError
from accord.app.tasks import Policy as TaskPolicy
from accord.config import Config
from accord.domain.partners import Partner, PartnerError, check_unique, parse_partner, to_table
from accord.federation import partners_toml
from accord.federation.gate import PolicyLoadError, load_policies
from accord.policy import Policy

log = logging.getLogger("accord")

POLL_S = 0.25  # how often partners.toml is looked at (a stat)
COPIES = Path("cluster") / "partners"  # in the data directory: the record's files, as in force


def _one_line(exc: Exception) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _read(path: str, what: str) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PartnerError(f"cannot read {what} {path}: {exc}") from None


def local_doc(config: Config) -> tuple[dict[str, bytes], dict[str, Policy]]:
    """This node's own partners as the record spells them, checked as a single server checks
    them at start: :class:`StartupError` (bad ``partners.toml``) or
    :class:`~accord.federation.gate.PolicyLoadError` (a bad policy file)."""
    from accord.cluster.partners_state import entry_bytes

    partners = read_partners(config)
    policies = load_policies(partners, Path())
    try:
        return {
            p.name: entry_bytes(
                to_table(p), _read(p.ca_file, "ca_file"), _read(p.policy_file, "policy_file")
            )
            for p in partners
        }, policies
    except PartnerError as exc:
        raise StartupError(str(exc)) from None


class ClusterPartners:
    """This node's share of the organisation's partners record (see the module)."""

    def __init__(self, running: Running, config: Config, kv: Any) -> None:
        from accord.cluster.partners_sync import PartnersSync

        self._running = running
        self._config = config
        self._copies = config.data_dir / COPIES
        self.sync = PartnersSync(kv, self._apply)
        self.policies: dict[str, Policy] = {}  # in force here (whether or not it runs the links)
        self.reload_wanted = asyncio.Event()  # SIGHUP: read this node's files again
        self.relink_wanted = asyncio.Event()  # the partners changed: links up again
        self._toml_stamp = _stamp(partners_toml.path(config.data_dir))

    async def open(self) -> tuple[Partner, ...]:
        """Join: seed the record, or take the cluster's (one line when it differs)."""
        from accord.cluster.partners_state import differences
        from accord.cluster.state import StateError

        try:
            local, _ = local_doc(self._config)
        except PolicyLoadError as exc:  # as a single server refuses to start on it
            raise StartupError(_one_line(exc)) from None
        try:
            doc, seeded = await self.sync.open(local)
            partners, policies = self._materialise(doc)
        except (StateError, PartnerError, PolicyLoadError, OSError) as exc:
            raise StartupError(
                f"the cluster's partners and release policies are refused: {_one_line(exc)}; "
                "fix them on a node of the cluster (accord partner add, or its policy file "
                "and SIGHUP)"
            ) from None
        org = self._config.cluster.org
        if seeded:
            log.info("cluster %s: partners and release policies seeded from this node (%d)",
                     org, len(doc))  # fmt: skip
        elif doc != local:
            log.warning(
                "cluster %s: this node's partners and release policies differ from the "
                "cluster's, which are used: %s (change them on any node with `accord "
                "partner` or a policy file and SIGHUP)",
                org,
                ", ".join(differences(doc, local)),
            )
        self._mirror(doc)
        self.policies = policies
        self._running.partners = partners
        return partners

    # -- loops (run by the owner) --------------------------------------------------------------
    async def poll_loop(self) -> None:
        """This node's files changed (``accord partner``: partners.toml; a policy file and
        SIGHUP): check them and publish what changed."""
        while True:
            try:
                async with asyncio.timeout(POLL_S):
                    await self.reload_wanted.wait()
            except TimeoutError:
                pass
            stamp = _stamp(partners_toml.path(self._config.data_dir))
            wanted = self.reload_wanted.is_set() or stamp != self._toml_stamp
            if not (wanted or self.sync.unshared):
                continue
            self.reload_wanted.clear()
            self._toml_stamp = stamp
            try:
                now, _ = local_doc(self._config)
            except (StartupError, PolicyLoadError) as exc:
                log.error(
                    "partners and release policies not published to the cluster, those in "
                    "force stay: %s",
                    _one_line(exc),
                )
                continue
            if now == self.sync.local and not self.sync.unshared:
                log.info("partners and release policies of this node: none changed")
                continue
            if await self.sync.local_changed(now):
                log.info("partners and release policies of this node published to the cluster")

    async def relink_loop(self) -> None:
        while True:
            await self.relink_wanted.wait()
            self.relink_wanted.clear()
            relink = self._running.relink
            if relink is not None:
                await relink()

    # -- inside --------------------------------------------------------------------------------
    def _materialise(self, doc: dict[str, bytes]) -> tuple[tuple[Partner, ...], dict[str, Policy]]:
        """The record's partners with their CA and policy written under the data directory
        (named by their content: a refused version never replaces a good one's file), and
        their policies loaded as a single server loads its own."""
        self._copies.mkdir(parents=True, exist_ok=True)
        partners = []
        for name in sorted(doc):
            entry = json.loads(doc[name])
            table = dict(entry["partner"])
            if entry["ca_pem"]:
                table["ca_file"] = str(self._copy(name, "ca", ".pem", entry["ca_pem"]))
            if entry["policy"]:
                table["policy_file"] = str(self._copy(name, "policy", ".toml", entry["policy"]))
            partners.append(parse_partner(table, f"the cluster's partner {name!r}"))
        check_unique(partners, "the cluster's partners")
        return tuple(partners), load_policies(partners, Path())

    def _copy(self, name: str, kind: str, suffix: str, text: str) -> Path:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        path = self._copies / f"{name}-{kind}-{digest}{suffix}"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(path)
        return path

    def _mirror(self, doc: dict[str, bytes]) -> None:
        """Keep ``partners.toml`` a copy of the record (as ``users.json`` is of the users),
        so that ``accord partner list|remove`` and the policy copy ``accord partner add``
        keeps (``partners/<name>-policy.toml``: edit it, then SIGHUP) work on every node.
        Partners of the node's config file stay there, as its operator wrote them."""
        from accord.cluster.partners_state import entry_bytes

        data_dir = self._config.data_dir
        if _stamp(partners_toml.path(data_dir)) != self._toml_stamp:
            return  # changed here and not read yet: the poll publishes it first, then mirrors
        configured = {p.name for p in self._config.partners}
        wanted = {n: e for n, e in doc.items() if n not in configured}
        try:
            have = {
                p.name: entry_bytes(to_table(p), _read(p.ca_file, "ca"), _read(p.policy_file, "p"))
                for p in partners_toml.read(data_dir)
            }
        except PartnerError:
            have = {}
        if have != wanted:
            try:
                self._write_mirror(wanted)
            except (OSError, PartnerError) as exc:  # in force all the same; the files lag
                log.warning("cluster: partners.toml not updated from the cluster: %s", exc)
        self._toml_stamp = _stamp(partners_toml.path(data_dir))
        # What this node's files hold now: a later change here is told apart from it.
        self.sync.local = {
            **{n: e for n, e in self.sync.local.items() if n in configured},
            **wanted,
        }

    def _write_mirror(self, wanted: dict[str, bytes]) -> None:
        data_dir = self._config.data_dir
        rows = []
        (data_dir / "partners").mkdir(parents=True, exist_ok=True)
        for name in sorted(wanted):
            entry = json.loads(wanted[name])
            table = dict(entry["partner"])
            files = (("ca_file", "ca.pem", entry["ca_pem"]),
                     ("policy_file", "policy.toml", entry["policy"]))  # fmt: skip
            for key, kind, text in files:
                if text:
                    relative = Path("partners") / f"{name}-{kind}"
                    (data_dir / relative).write_text(text)
                    table[key] = str(relative)
            rows.append(parse_partner(table, f"the cluster's partner {name!r}"))
        partners_toml.write(data_dir, tuple(rows))

    def _apply(self, doc: dict[str, bytes]) -> bool:
        """A version of the record: in force, or refused with one line (the last good one
        stays)."""
        running = self._running
        try:
            partners, policies = self._materialise(doc)
        except (PartnerError, PolicyLoadError, OSError, ValueError, KeyError) as exc:
            log.error(
                "cluster: partners and release policies from the cluster refused, those in "
                "force stay: %s",
                _one_line(exc),
            )
            return False
        self._mirror(doc)
        before = running.partners
        running.partners = partners
        self.policies = policies
        changed = running.put_policies(policies)
        versions = ", ".join(f"{n} ({p.version})" for n, p in sorted(policies.items()))
        links = f"; on this node's links now: {', '.join(changed)}" if changed else ""
        log.info("cluster: partners and release policies in force: %d partners; policies %s%s",
                 len(partners), versions or "none", links)  # fmt: skip
        if _settings(before) != _settings(partners):
            self.relink_wanted.set()
        return True


def _settings(partners: Sequence[Partner]) -> tuple[Partner, ...]:
    """The partners but their policies (a policy change alone needs no new links; the CA's
    copy is named by its content, so a new CA is a change)."""
    return tuple(dataclasses.replace(p, policy_file="") for p in partners)


async def start_cluster_partners(
    running: Running, config: Config, partners: tuple[Partner, ...]
) -> tuple[Partner, ...]:
    """In a cluster: the partners in force are the cluster's (returned); else ``partners``."""
    bus = running.cluster
    if bus is None or bus.state_kv is None:
        return partners
    shared = ClusterPartners(running, config, bus.state_kv)
    partners = await shared.open()
    running.shared_partners = shared
    running.probes.sources.append(shared.sync)
    for name, loop in (
        ("cluster partners poll", shared.poll_loop),
        ("cluster partners watch", shared.sync.watch_loop),
        ("cluster partners relink", shared.relink_loop),
    ):
        task = running.tasks.start(name, loop, TaskPolicy.RESTART)
        running.stack.push_async_callback(running.tasks.stop, task)
    return partners
