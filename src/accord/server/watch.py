"""Follow, in a running server, what the operator changes from another process.

`accord cert revoke` rewrites the CRL and `accord user groups` rewrites the user store; the
watcher notices (a stat or two every few seconds costs nothing measurable), reloads, closes
revoked sessions and moves regrouped ones. It also re-signs the CRL before it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from accord.domain.groups import Membership
from accord.identity import registry
from accord.identity.ca import PkiError, PkiPaths
from accord.identity.users import UserStore, UserStoreError
from accord.server.listeners import TlsListener, server_tls_context

log = logging.getLogger("accord.watch")
CRL_RENEW_CHECK_S = 3600.0


def tls_context(pki: PkiPaths) -> ssl.SSLContext:
    return server_tls_context(pki.server_cert, pki.server_key, pki.ca_cert, registry.crl_path(pki))


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


@dataclass
class Identities:
    """What certificate holders get, kept current by :func:`watch_identity`: their groups (the
    users of ``accord user`` over the groups file) and the revoked serials (for listeners that
    cannot swap their TLS context, such as the HTTPS API)."""

    from_file: Mapping[str, Membership]
    users: UserStore
    revoked: frozenset[str] = frozenset()
    groups: dict[str, Membership] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.groups = {**self.from_file, **self.users.memberships()}

    def refresh_groups(self) -> bool:
        """Re-read the users if they changed; True when the groups map was rebuilt."""
        if not self.users.reload_if_changed():
            return False
        self.groups = {**self.from_file, **self.users.memberships()}
        return True


async def watch_identity(
    tls: TlsListener | None,
    pki: PkiPaths,
    identities: Identities,
    every_s: float,
    wake: asyncio.Event | None = None,
) -> None:
    """Apply revocations and group changes to the running server; keep the CRL current.

    ``wake``, when set, starts the next round at once (a cluster node whose files another
    node's change was just written into)."""
    crl = registry.crl_path(pki)
    seen = _stamp(crl)
    renewed = time.monotonic()
    while True:
        if wake is None:
            await asyncio.sleep(every_s)
        else:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # cancellation that stops this task (gh-86296).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every_s):
                    await wake.wait()
            wake.clear()
        try:
            if identities.refresh_groups() and tls is not None:
                moved = tls.regroup(identities.groups)
                log.info("user groups reloaded: %d live sessions moved", moved)
        except UserStoreError as exc:
            log.error("user store changed but cannot be read (%s); keeping the old groups", exc)
        if time.monotonic() - renewed > CRL_RENEW_CHECK_S:
            renewed = time.monotonic()
            try:
                registry.ensure_crl(pki, dt.datetime.now(dt.UTC))
            except (PkiError, OSError) as exc:
                log.error("cannot renew the CRL: %s", exc)
        stamp = _stamp(crl)
        if stamp == seen:
            continue
        seen = stamp
        try:
            context = tls_context(pki)
            revoked = registry.revoked_serials(pki)
        except (PkiError, OSError, ValueError, ssl.SSLError) as exc:
            log.error("revocation list changed but cannot be loaded (%s); keeping the old one", exc)
            continue
        identities.revoked = revoked
        closed = tls.reload(context, revoked) if tls is not None else 0
        log.info(
            "revocation list reloaded: %d revoked, %d live sessions closed", len(revoked), closed
        )
