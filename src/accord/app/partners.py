"""Composition of what is shared with partners: the partner list, the release policies and
the sharing ledger, the federation links and the port partners fetch packages from."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from cryptography import x509

from accord.api.missions_sharing import MissionSharing
from accord.app.file_sharing import file_shares, serve_partner_files
from accord.app.running import Running, StartupError, listen_error, wall_ms
from accord.app.tasks import Policy
from accord.config import Config
from accord.domain.partners import Partner, PartnerError, check_unique, server_id
from accord.domain.views import MetricsSource
from accord.federation import partners_toml
from accord.federation.connection import Own
from accord.federation.contract import Gate, Journal
from accord.federation.gate import PolicyGate, PolicyLoadError, load_policies
from accord.federation.journal import LedgerJournal
from accord.federation.ledger_exchange import LedgerExchange
from accord.federation.transport import Federation
from accord.federation.trust import fingerprint
from accord.identity.ca import PkiError, PkiPaths
from accord.identity.ledger_key import ensure_ledger_key, ensure_ledger_secret
from accord.identity.pki import ensure_federation_certificate
from accord.store.blobs import Blobs
from accord.store.contract import StoreError

log = logging.getLogger("accord")


def read_partners(config: Config) -> tuple[Partner, ...]:
    """The partners of the config file and of ``<data_dir>/partners.toml``, checked unique."""
    try:
        partners = (*config.partners, *partners_toml.read(config.data_dir))
        check_unique(partners, "partners (config file and partners.toml)")
    except PartnerError as exc:
        raise StartupError(str(exc)) from None
    return partners


async def start_ledger_and_policies(
    running: Running,
    config: Config,
    pki: PkiPaths,
    partners: Sequence[Partner],
    gate: Gate | None,
    stack: AsyncExitStack | None = None,
) -> tuple[Gate, Journal]:
    """The partners' release policies (refused at start when invalid) and the sharing ledger,
    continued from the store, its writer task started (``stack``: what stops them, default
    ``running.stack``)."""
    assert running.store is not None
    stack = stack or running.stack
    try:
        policies = load_policies(partners, Path())
    except PolicyLoadError as exc:
        raise StartupError(str(exc)) from None
    try:
        signer = ensure_ledger_key(pki.root, config.federation_name or config.server_names[0])
        secret = ensure_ledger_secret(pki.root)
    except PkiError as exc:
        raise StartupError(str(exc)) from None
    journal = LedgerJournal(running.store, signer, secret, wall_ms=wall_ms)
    try:
        await journal.restore(p.name for p in partners)
    except StoreError as exc:
        raise StartupError(f"cannot read the sharing ledger: {exc}") from None
    running.ledger = journal
    # Stops the server when it fails: the ledger's promise is that everything released is in
    # it, so releasing on without its writer would break it silently.
    writing = running.tasks.start("sharing ledger writer", journal.run, Policy.STOP)
    stack.push_async_callback(_stop_ledger, running, journal, writing)
    running.probes.sources.append(journal)
    if gate is None:
        gate = running.gate = PolicyGate(policies, key=secret, decisions=journal)
        stack.callback(running.gate.close)
        running.probes.release = running.gate
        running.probes.sources.append(running.gate)
    return gate, journal


async def _stop_ledger(
    running: Running, journal: LedgerJournal, writing: asyncio.Task[None]
) -> None:
    """Let the writer store what is queued and checkpoint; cut it off after the grace."""
    journal.stop()
    _, pending = await asyncio.wait([writing], timeout=running.grace_s)
    if pending:
        await running.tasks.stop(writing)
        log.error(
            "%d ledger entries were not stored in %g s: the ledger ends before them",
            journal.queued,
            running.grace_s,
        )


async def start_federation(
    running: Running,
    config: Config,
    partners: Sequence[Partner],
    pki: PkiPaths,
    port: int,
    gate: Gate | None,
    journal: Journal | None,
    blobs: Blobs,
    files_port: int,
) -> None:
    """Partner links (``partners``: see :func:`read_partners`) and the port partners fetch
    shared packages from. In a cluster, they run only on the node holding the organisation's
    partner-link lease (see :func:`_start_leased`)."""
    args = (config, partners, pki, port, gate, journal, blobs, files_port)
    if running.shared_partners is not None:
        # The partners in force are the cluster's and may change: a node that had none at
        # start joins the lease when some arrive (see :func:`_relink`).
        running.relink = lambda: _relink(running, args)
    if not partners:
        return
    running.partners = tuple(partners)
    if running.cluster is not None:
        await _start_leased(running, args)
        return
    await _start_links(running, running.stack, *args)


_LinkArgs = tuple[Config, Sequence[Partner], PkiPaths, int, Gate | None, Journal | None, Blobs, int]


async def _relink(running: Running, args: _LinkArgs) -> None:
    """The cluster's partners changed (not only their policies): the lease is joined if this
    node had no partners at start, and the links run here are brought up again with the
    partners now in force (as a lease lost and gained: outboxes and ledger continue)."""
    if running.lease is None:
        if running.partners:
            await _start_leased(running, args)
        return
    if running.lease_relink is not None:
        await running.lease_relink()


async def _start_leased(running: Running, args: _LinkArgs) -> None:
    """The links, the sharing ledger and the partners' file port, started on this node when it
    gains the partner-link lease and stopped when it loses it (issue 17): every node of the
    organisation shares one store, so the node that takes over continues the links' outboxes
    and the ledger where the last holder left them."""
    from accord.cluster.lease import Change, LeaseKeeper

    config, gate = args[0], args[4]
    bus = running.cluster
    active: list[tuple[AsyncExitStack, list[MetricsSource]]] = []  # (stack, its sources)
    turn = asyncio.Lock()  # one change at a time: the keeper's, or a relink

    async def stop() -> None:
        while active:
            stack, sources = active.pop()
            try:
                await stack.aclose()
            finally:
                # What the links reported goes with them (not what another part added).
                running.probes.sources[:] = [
                    s for s in running.probes.sources if not any(s is x for x in sources)
                ]
                running.ledger = None
                if gate is None:
                    running.gate = None
                    running.probes.release = None
                running.probes.links = None
                running.mission_sharing = None
                if running.missions is not None:
                    running.missions.on_change = None
                running.ports.pop("federation", None)
                running.ports.pop("federation_files", None)

    async def gained() -> None:
        # The partners in force now (in a cluster they are the cluster's, and may have
        # changed since start): the holder federates under the cluster's policies.
        partners = running.partners
        if not partners:
            return  # held, with nothing to run until partners arrive (a relink)
        stack, sources = AsyncExitStack(), list[MetricsSource]()
        before = list(running.probes.sources)
        active.append((stack, sources))
        try:
            await _start_links(running, stack, config, partners, *args[2:])
        finally:
            sources += [s for s in running.probes.sources if not any(s is x for x in before)]
        shared = running.shared_partners
        if shared is not None:
            # A policy of the cluster put in force while the links were starting (before
            # their gate existed) is in force on them too.
            running.put_policies(shared.policies)
        # (a failed start raises into the keeper, which gives the lease back: stop() then)

    async def changed(change: Change) -> None:
        async with turn:
            if change is not Change.GAINED:
                await stop()
                return
            await gained()

    async def relink() -> None:
        async with turn:
            if not keeper.core.holding:
                return
            await stop()
            try:
                await gained()
            except Exception as exc:  # StartupError, a port taken: the links stay down
                log.error("partner links not brought up again with the new partners: %s", exc)
                await stop()

    keeper = LeaseKeeper(
        bus.connection,
        org=config.cluster.org,
        node=bus.node,
        replicas=config.cluster.sa_replicas,
        on_change=changed,
    )
    running.lease = keeper
    running.lease_relink = relink
    running.probes.sources.append(keeper)

    async def keep() -> None:
        # Only once the server has started (its own parts are on running.stack by then).
        await running.started.wait()
        await keeper.run()

    running.stack.push_async_callback(stop)  # runs after the keeper stopped (it gives back)
    task = running.tasks.start("partner-link lease", keep, Policy.RESTART)
    running.stack.push_async_callback(running.tasks.stop, task)


async def _start_links(
    running: Running,
    stack: AsyncExitStack,
    config: Config,
    partners: Sequence[Partner],
    pki: PkiPaths,
    port: int,
    gate: Gate | None,
    journal: Journal | None,
    blobs: Blobs,
    files_port: int,
) -> None:
    try:
        ensure_federation_certificate(pki, config.server_names, dt.datetime.now(dt.UTC))
        ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        chain = (pki.federation_key.read_bytes(), pki.federation_cert.read_bytes())
    except (OSError, ValueError, PkiError) as exc:
        raise StartupError(f"cannot load the server certificate from {pki.root} ({exc})") from None
    if gate is None or journal is None:
        gate, journal = await start_ledger_and_policies(running, config, pki, partners, gate, stack)
    federation = Federation(
        partners,
        exchange=running.hub,
        gate=gate,
        journal=journal,
        own=Own(server_id(fingerprint(ca)), config.federation_name or config.server_names[0]),
        cert_chain=chain,
        base=Path(),
        wall_ms=wall_ms,
        store=running.store,
        outbox_events=config.federation_outbox_events,
        ledger_exchange=(
            None
            if running.ledger is None or running.store is None
            else LedgerExchange(running.ledger, running.store, pki.root, wall_ms=wall_ms)
        ),
        files=file_shares(running, config, pki, blobs) if config.federation_files_port else None,
    )
    running.federation = federation
    federation.on_failure = running.tasks.report
    stack.push_async_callback(_close_federation, running)
    if running.gate is not None:
        running.gate.redeliver = federation.redeliver
    running.probes.links = federation
    running.probes.sources.append(federation)
    if running.missions is not None and isinstance(running.gate, PolicyGate):
        _share_missions(running, federation, partners, running.gate, stack)
    try:
        bound = await federation.start(config.bind, port, listen=config.federation_port != 0)
    except OSError as exc:
        raise listen_error(exc, config.bind, port, "--federation-port") from None
    if bound is not None:
        running.ports["federation"] = bound
        if federation.files is not None:
            await serve_partner_files(running, config, pki, blobs, federation, files_port, stack)


async def _close_federation(running: Running) -> None:
    if running.federation is not None:
        await running.federation.close()
        running.federation = None


def _share_missions(
    running: Running,
    federation: Federation,
    partners: Sequence[Partner],
    gate: PolicyGate,
    stack: AsyncExitStack,
) -> None:
    """Missions shared with partners under their policies' ``[[mission]]`` sections."""
    assert running.missions is not None
    sharing = MissionSharing(
        running.missions,
        gate.policies,
        federation.mission_links,
        partners,
        wall_ms=wall_ms,
        files=federation.files,
    )
    running.missions.on_change = sharing.changed
    federation.share_missions(sharing.receive)
    running.mission_sharing = sharing
    task = running.tasks.start("mission sharing", sharing.run, Policy.RESTART)
    stack.push_async_callback(running.tasks.stop, task)
    running.probes.sources.append(sharing)
