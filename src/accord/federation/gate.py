"""The release gate of partner links: each partner's written policy, applied on the event loop.

:class:`PolicyGate` implements :class:`~accord.domain.ports.ReleaseGate` with the pure engine of
:mod:`accord.policy`. Per partner: its ``policy_file`` decides (Release sends the transformed
event, Withhold sends nothing, Delay holds the newest event of that uid until it is due); a
partner without a policy gets everything only when configured ``share_all``, else nothing (deny
by default). Every decision is counted (/metrics, admin status) and, when a
:class:`DecisionLog` is plugged in (the sharing ledger), told to it so that withheld items are
recorded too. Held (delayed) events are re-offered through ``redeliver`` — the federation sends
them to the partner's links, which ask this gate again.

The gate remembers which uids it released to each partner (and as what: a pseudonym), so that
their departure (a ``t-x-d-d``) reaches the partner even under a policy that withholds ``t-*``:
it is no news about something the partner already has (:mod:`accord.policy.departure`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

from accord.cot.model import CotEvent
from accord.cot.xml import encode_xml
from accord.domain.partners import Partner
from accord.domain.ports import Sample
from accord.domain.routing import DELETE_TYPE, deleted
from accord.policy import Delay, Policy, PolicyError, PolicyState, Release, decide, decode_policy
from accord.policy.departure import FORCE_DELETE, release_departure

log = logging.getLogger("accord.federation")

SHARE_ALL_RULE = "(share_all)"  # the rule name recorded for a share_all partner's releases
# Events held for a release delay, per partner, before the oldest due is dropped (counted).
MAX_HELD_EVENTS = 50_000
# Uids remembered as released, per partner, the least recently released forgotten first: a
# contact silent for that many other releases departs withheld, and its SA goes stale instead.
MAX_RELEASED_UIDS = 50_000


class PolicyLoadError(ValueError):
    """A partner's policy file is missing or invalid; the message names file, line and key."""


class DecisionLog(Protocol):
    """Where the gate reports release decisions (the ledger). Called on the hot path."""

    def will_release(self, partner: str, rule: str, policy: str) -> None:
        """The next frame journalled as released to ``partner`` was released by ``rule``."""
        ...

    def withheld(self, partner: str, rule: str, policy: str, item: bytes, now_ms: int) -> None:
        """``item`` (the event's bytes) was kept back from ``partner`` by ``rule``."""
        ...


def load_policy(partner: Partner, base: Path) -> Policy:
    """``partner.policy_file`` (relative to ``base``), decoded; PolicyLoadError with every
    problem (``file:line: key: why``) when it cannot be used."""
    path = base / partner.policy_file
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyLoadError(
            f"partner {partner.name}: cannot read policy_file {path}: {exc.strerror}"
        ) from None
    try:
        return decode_policy(raw)
    except PolicyError as exc:
        problems = "; ".join(issue.format(str(path)) for issue in exc.issues)
        raise PolicyLoadError(
            f"partner {partner.name}: policy_file is not a valid policy: {problems} "
            f"(check it with `accord policy check {path}`)"
        ) from None


def _item(event: CotEvent) -> bytes:
    return event.raw or encode_xml(event)


class PolicyGate:
    """:class:`~accord.domain.ports.ReleaseGate` over per-partner policies."""

    def __init__(
        self,
        policies: Mapping[str, Policy],
        *,
        key: bytes | None = None,
        decisions: DecisionLog | None = None,
    ) -> None:
        """``policies`` by partner name; ``key``: the server's pseudonym key, for policies
        that pseudonymise without a ``secret`` of their own."""
        self.policies = dict(policies)
        self.states = {name: PolicyState() for name in policies}
        self._key = key
        self._decisions = decisions
        self._held: dict[tuple[str, str], CotEvent] = {}
        # partner -> uid -> the uid as released, oldest release first (bounded).
        self._released: dict[str, dict[str, str]] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self.held_dropped = 0
        # Set by the composition root: send a held event to the partner's links again.
        self.redeliver: Callable[[str, CotEvent], None] | None = None

    def set_policy(self, partner: str, policy: Policy) -> None:
        """Put ``policy`` in force for ``partner`` from now on (counters and rate limits
        start afresh; events held for a delay are decided again under it when due)."""
        self.policies[partner] = policy
        self.states[partner] = PolicyState()

    # -- ReleaseGate -------------------------------------------------------------------------
    def outbound(self, event: CotEvent, partner: Partner, now_ms: int) -> CotEvent | None:
        policy = self.policies.get(partner.name)
        if policy is None:
            if not partner.share_all:
                return None
            if self._decisions is not None:
                self._decisions.will_release(partner.name, SHARE_ALL_RULE, "")
            return event
        if event.type == DELETE_TYPE:
            departure = self._departure(event, partner.name, policy, now_ms)
            if departure is not None:
                return departure
        # A policy's own secret wins (what `accord policy explain` shows); else the server's.
        key = self._key if policy.secret is None else None
        decision = decide(event, policy, now_ms, self.states[partner.name], key=key)
        if isinstance(decision, Release):
            if self._decisions is not None:
                self._decisions.will_release(partner.name, decision.rule, policy.version)
            self._remember(partner.name, event.uid, decision.event.uid)
            return decision.event
        if isinstance(decision, Delay):
            self._hold(partner.name, event, decision.until_ms - now_ms)
            return None
        if self._decisions is not None:
            self._decisions.withheld(
                partner.name, decision.rule, policy.version, _item(event), now_ms
            )
        return None

    def released_as(self, partner: str, uid: str) -> str | None:
        """The uid ``uid`` was last released to ``partner`` as (its pseudonym), or None."""
        return self._released.get(partner, {}).get(uid)

    def _remember(self, partner: str, uid: str, released: str) -> None:
        uids = self._released.get(partner)
        if uids is None:
            uids = self._released[partner] = {}
        uids.pop(uid, None)  # re-inserted: the dict stays in order of the latest release
        uids[uid] = released
        if len(uids) > MAX_RELEASED_UIDS:
            del uids[next(iter(uids))]

    def _departure(
        self, event: CotEvent, partner: str, policy: Policy, now_ms: int
    ) -> CotEvent | None:
        """The departure of a uid released to ``partner``, as it may have it; None when the
        uid was never released (the policy decides, as for any event). The uid stays
        remembered: a partner with two links (both sides dial) asks once per link."""
        target = deleted(event)
        released = None if target is None else self._released.get(partner, {}).get(target[0])
        if target is None or released is None:
            return None
        force = FORCE_DELETE in event.detail.xml
        decision = release_departure(
            event, policy, released, target[1], now_ms, self.states[partner], force=force
        )
        if self._decisions is not None:
            self._decisions.will_release(partner, decision.rule, policy.version)
        return decision.event

    def inbound(self, event: CotEvent, partner: Partner, now_ms: int) -> CotEvent | None:
        """What a partner sends passed its own policy; ours decides only what leaves. A partner
        with neither a policy nor ``share_all`` is not federated with at all."""
        if partner.name in self.policies or partner.share_all:
            return event
        return None

    # -- release delay -----------------------------------------------------------------------
    def _hold(self, partner: str, event: CotEvent, wait_ms: int) -> None:
        """Keep the newest event of its uid; offer it again when ``wait_ms`` have passed."""
        slot = (partner, event.uid)
        self._held[slot] = event
        if slot in self._timers:
            return  # the armed timer re-offers the newest; a later one is held again
        if len(self._timers) >= MAX_HELD_EVENTS:
            self.held_dropped += 1
            del self._held[slot]
            return
        loop = asyncio.get_running_loop()
        self._timers[slot] = loop.call_later(max(wait_ms, 0) / 1000, self._due, slot)

    def _due(self, slot: tuple[str, str]) -> None:
        self._timers.pop(slot, None)
        event = self._held.pop(slot, None)
        if event is not None and self.redeliver is not None:
            self.redeliver(slot[0], event)

    @property
    def held(self) -> int:
        return len(self._held)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._held.clear()

    # -- reporting ---------------------------------------------------------------------------
    def decisions(self, partner: str) -> dict[str, dict[str, int]]:
        """Decisions so far for ``partner``: {rule: {outcome: count}}."""
        state = self.states.get(partner)
        out: dict[str, dict[str, int]] = {}
        if state is not None:
            for (rule, outcome), n in sorted(state.counters.counts.items()):
                out.setdefault(rule, {})[outcome.value] = n
        return out

    def samples(self) -> Iterable[Sample]:
        for partner, state in self.states.items():
            for (rule, outcome), n in sorted(state.counters.counts.items()):
                yield Sample(
                    "federation_policy_decisions_total",
                    "counter",
                    "release decisions of a partner's policy, by rule and outcome",
                    float(n),
                    (("partner", partner), ("rule", rule), ("outcome", outcome.value)),
                )
        yield Sample(
            "federation_policy_held_events",
            "gauge",
            "events held back for a release delay",
            float(len(self._held)),
        )
        yield Sample(
            "federation_policy_held_dropped_total",
            "counter",
            "delayed events dropped because too many were held",
            float(self.held_dropped),
        )


def load_policies(partners: Iterable[Partner], base: Path) -> dict[str, Policy]:
    """Every partner's policy that has a ``policy_file``; PolicyLoadError naming all bad ones."""
    out: dict[str, Policy] = {}
    errors: list[str] = []
    for partner in partners:
        if not partner.policy_file:
            continue
        try:
            out[partner.name] = load_policy(partner, base)
        except PolicyLoadError as exc:
            errors.append(str(exc))
    if errors:
        raise PolicyLoadError("\n".join(errors))
    return out
