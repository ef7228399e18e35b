"""A human-readable account of one decision: each check in order, the outcome, the output."""

from __future__ import annotations

from accord.cot.model import CotEvent, iso_from_ms
from accord.cot.xml import encode_xml
from accord.policy.apply import Delay, PolicyState, Release, decide, select
from accord.policy.model import Policy


def explain(event: CotEvent, policy: Policy, now_ms: int, key: bytes | None = None) -> str:
    """Trace the checks, then the decision; a release shows the event that would be sent.

    The decision is taken on a fresh :class:`PolicyState`: a rate limit never withholds the
    first event of a uid, so the explanation shows what the rule does to it.
    """
    _, _, trace = select(policy, event, now_ms)
    lines = [
        f"policy {policy.name} for {policy.partner} ({policy.version})",
        f"event {event.uid} type {event.type} at {iso_from_ms(event.time)}, "
        f"now {iso_from_ms(now_ms)}",
    ]
    lines += [f"  {'=>' if s.decided else '  '} {s.check}: {s.why}" for s in trace]
    decision = decide(event, policy, now_ms, PolicyState(), key=key)
    if isinstance(decision, Release):
        lines.append(f"decision: RELEASE by rule {decision.rule}")
        lines += [f"  - {step}" for step in decision.transforms]
        lines.append("sent:")
        lines.append(encode_xml(decision.event).decode())
    elif isinstance(decision, Delay):
        lines.append(
            f"decision: DELAY by rule {decision.rule} until {iso_from_ms(decision.until_ms)}"
        )
    else:
        lines.append(f"decision: WITHHOLD ({decision.rule}): {decision.reason}")
    return "\n".join(lines)
