"""The release gate and journal used until the policy engine and the ledger are plugged in.

Deny by default: nothing crosses a partner link, either way, unless that partner is configured
``share_all = true`` (for tests and demos). The journal forgets everything.
"""

from __future__ import annotations

from accord.cot.model import CotEvent
from accord.domain.partners import Partner


class ShareAllOrNothing:
    """:class:`accord.domain.ports.ReleaseGate`: all for ``share_all`` partners, else none."""

    def outbound(self, event: CotEvent, partner: Partner, now_ms: int) -> CotEvent | None:
        return event if partner.share_all else None

    def inbound(self, event: CotEvent, partner: Partner, now_ms: int) -> CotEvent | None:
        return event if partner.share_all else None


class NoJournal:
    """:class:`accord.domain.ports.LinkJournal` that keeps nothing."""

    def released(self, partner: str, seq: int, frame: bytes) -> None:
        pass

    def received(self, partner: str, seq: int, frame: bytes) -> None:
        pass

    def dropped(self, partner: str, frame: bytes) -> None:
        pass
