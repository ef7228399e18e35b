"""``decide(event, policy, now_ms, state)``: what, if anything, a partner receives.

Evaluation order (first decisive step wins):

1. the policy's validity window (``valid_from``/``valid_until``);
2. ``always_withhold`` (types, areas) — beats every rule;
3. the first rule whose match holds (type globs, ``areas``, ``not_areas``, ``max_age_s``, all
   on the *original* event); a ``withhold`` rule withholds; no rule at all: deny by default;
4. the rule's release delay (``Delay`` until event time + delay) and rate limit;
5. transforms in a fixed order: detail strip/keep → uid pseudonyms (same mapping for ``link``
   targets; links to targets this policy would never release are dropped) → position grid and
   altitude rounding (ce/le inflated) → stale moved by the delay → ``<__release>`` marking.

State (the rate limit's last releases, the counters) lives in :class:`PolicyState`, passed in
and mutated; time is passed in. Every call counts one decision under (rule, outcome).
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import math
import re
from collections import Counter
from dataclasses import dataclass, field

from lxml import etree

from accord.cot.model import CotEvent
from accord.policy.geo import contains, grid_cell
from accord.policy.model import Policy, Rule
from accord.policy.transform import (
    coarsen,
    marking,
    marking_plain,
    plain_release,
    pseudonym,
    release_element,
    rewrite_detail,
)

# Counter labels for decisions no rule made.
DEFAULT_RULE = "(default)"
ALWAYS_RULE = "(always_withhold)"
VALIDITY_RULE = "(validity)"
# Rate-limit entries kept before expired ones are pruned (one per uid and rule).
MAX_TRACKED = 100_000


class Outcome(enum.StrEnum):
    RELEASE = "release"
    WITHHOLD = "withhold"
    DELAY = "delay"
    RATE_LIMIT = "rate_limit"


@dataclass(frozen=True, slots=True)
class Release:
    event: CotEvent  # what the partner receives: encode it afresh (raw is empty)
    rule: str
    transforms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Withhold:
    reason: str
    rule: str  # a rule name, or DEFAULT_RULE / ALWAYS_RULE / VALIDITY_RULE
    outcome: Outcome = Outcome.WITHHOLD  # RATE_LIMIT when the rate limit withheld it


@dataclass(frozen=True, slots=True)
class Delay:
    """Not yet: ask again at ``until_ms`` (event time + the rule's delay)."""

    until_ms: int
    rule: str


Decision = Release | Withhold | Delay


@dataclass
class PolicyCounters:
    """Decisions counted by (rule, outcome); rule is a name or one of the ``(…)`` labels."""

    counts: Counter[tuple[str, Outcome]] = field(default_factory=Counter)

    def add(self, rule: str, outcome: Outcome) -> None:
        self.counts[(rule, outcome)] += 1

    def get(self, rule: str, outcome: Outcome) -> int:
        return self.counts[(rule, outcome)]

    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class PolicyState:
    """What decisions remember between calls: last release per (rule, uid), and counters."""

    last_release_ms: dict[tuple[str, str], int] = field(default_factory=dict)
    counters: PolicyCounters = field(default_factory=PolicyCounters)

    def prune(self, now_ms: int, horizon_ms: int) -> None:
        """Forget releases older than ``horizon_ms`` (the longest min_interval in use)."""
        cutoff = now_ms - horizon_ms
        self.last_release_ms = {k: t for k, t in self.last_release_ms.items() if t > cutoff}


@dataclass(frozen=True, slots=True)
class Step:
    """One line of a trace: a check, whether it decided, and why."""

    check: str
    decided: bool
    why: str


def type_matches(globs: tuple[str, ...], cot_type: str) -> bool:
    """Whether a CoT type matches any glob (an empty tuple matches every type)."""
    return not globs or _globs(globs).match(cot_type) is not None


@functools.lru_cache(maxsize=1024)
def _globs(globs: tuple[str, ...]) -> re.Pattern[str]:
    # One regex for the tuple: fnmatchcase per glob was the costliest step of a decision.
    return re.compile("|".join(fnmatch.translate(g) for g in globs))


def _in_any(policy: Policy, names: tuple[str, ...], event: CotEvent) -> str | None:
    p = event.point
    for name in names:
        if contains(policy.areas[name].shape, p.lat, p.lon):
            return name
    return None


def rule_matches(rule: Rule, policy: Policy, event: CotEvent, now_ms: int) -> bool:
    """``rule_mismatch(...) is None`` without composing the reasons (the release path)."""
    return (
        type_matches(rule.types, event.type)
        and (not rule.areas or _in_any(policy, rule.areas, event) is not None)
        and _in_any(policy, rule.not_areas, event) is None
        and (rule.max_age_s is None or (now_ms - event.time) / 1000 <= rule.max_age_s)
    )


def _rest_matches(rule: Rule, policy: Policy, event: CotEvent, now_ms: int) -> bool:
    """:func:`rule_matches` for a rule whose types are known to accept the event's."""
    return (
        (not rule.areas or _in_any(policy, rule.areas, event) is not None)
        and (not rule.not_areas or _in_any(policy, rule.not_areas, event) is None)
        and (rule.max_age_s is None or (now_ms - event.time) / 1000 <= rule.max_age_s)
    )


# Per policy (held by its entry, so that its id cannot be reused while cached) and CoT type:
# whether always_withhold's types hold the type, and the rules whose type globs accept it, in
# order. Types come from clients, so each table is bounded (cleared when full).
_TYPE_TABLES: dict[int, tuple[Policy, dict[str, tuple[bool, tuple[Rule, ...]]]]] = {}
TYPE_TABLE_POLICIES = 64
TYPE_TABLE_TYPES = 4096


def _by_type(policy: Policy, cot_type: str) -> tuple[bool, tuple[Rule, ...]]:
    """Rule selection by type, decided once per (policy, type): the globs' regexes were the
    costliest part of choosing a rule."""
    entry = _TYPE_TABLES.get(id(policy))
    if entry is None or entry[0] is not policy:
        if len(_TYPE_TABLES) >= TYPE_TABLE_POLICIES:
            _TYPE_TABLES.clear()
        entry = _TYPE_TABLES[id(policy)] = (policy, {})
    table = entry[1]
    hit = table.get(cot_type)
    if hit is None:
        if len(table) >= TYPE_TABLE_TYPES:
            table.clear()
        held = policy.always_withhold.types
        hit = table[cot_type] = (
            bool(held) and type_matches(held, cot_type),
            tuple(rule for rule in policy.rules if type_matches(rule.types, cot_type)),
        )
    return hit


def rule_mismatch(rule: Rule, policy: Policy, event: CotEvent, now_ms: int) -> str | None:
    """Why the rule does not match the event, or None when it does."""
    if not type_matches(rule.types, event.type):
        return f"type {event.type} matches none of {', '.join(rule.types)}"
    if rule.areas and _in_any(policy, rule.areas, event) is None:
        return f"point outside {', '.join(rule.areas)}"
    inside = _in_any(policy, rule.not_areas, event)
    if inside is not None:
        return f"point inside not_area {inside}"
    if rule.max_age_s is not None:
        age_s = (now_ms - event.time) / 1000
        if age_s > rule.max_age_s:
            return f"event is {age_s:g} s old, max_age_s = {rule.max_age_s:g}"
    return None


def select(
    policy: Policy, event: CotEvent, now_ms: int, *, explain: bool = True
) -> tuple[Rule | None, Withhold | None, list[Step]]:
    """Steps 1-3: the rule that decides, or the withholding that precedes every rule; the
    trace says why each rule did not match only when ``explain``."""
    trace: list[Step] = []
    if policy.valid_from_ms is not None and now_ms < policy.valid_from_ms:
        why = "policy not yet in force (valid_from)"
        trace.append(Step("validity", True, why))
        return None, Withhold(why, VALIDITY_RULE), trace
    if policy.valid_until_ms is not None and now_ms >= policy.valid_until_ms:
        why = "policy expired (valid_until)"
        trace.append(Step("validity", True, why))
        return None, Withhold(why, VALIDITY_RULE), trace
    held = policy.always_withhold
    if not explain:
        held_type, candidates = _by_type(policy, event.type)
    else:
        held_type, candidates = bool(held.types) and type_matches(held.types, event.type), ()
    if held_type:
        why = f"type {event.type} is always withheld"
        trace.append(Step("always_withhold", True, why))
        return None, Withhold(why, ALWAYS_RULE), trace
    area = _in_any(policy, held.areas, event)
    if area is not None:
        why = f"point inside always-withheld area {area}"
        trace.append(Step("always_withhold", True, why))
        return None, Withhold(why, ALWAYS_RULE), trace
    trace.append(Step("always_withhold", False, "not matched"))
    if not explain:
        for rule in candidates:  # the rules whose types accept the event's, in order
            if _rest_matches(rule, policy, event, now_ms):
                return rule, (None if rule.release else Withhold("withhold rule", rule.name)), trace
        return None, Withhold("no rule matches: deny by default", DEFAULT_RULE), trace
    for rule in policy.rules:
        mismatch = rule_mismatch(rule, policy, event, now_ms)
        if mismatch is None:
            trace.append(Step(f"rule {rule.name}", True, "matches"))
            if not rule.release:
                return rule, Withhold("withhold rule", rule.name), trace
            return rule, None, trace
        trace.append(Step(f"rule {rule.name}", False, mismatch))
    why = "no rule matches: deny by default"
    trace.append(Step("default", True, why))
    return None, Withhold(why, DEFAULT_RULE), trace


def link_released(policy: Policy, link: etree._Element) -> bool:
    """Whether a ``<link>``'s target could be released to this partner.

    Only the target's ``type`` attribute is known here (not its position or age), so a link is
    dropped when that type is always withheld or no releasing rule accepts it; a link without a
    type is kept (pseudonymised), since the policy cannot know what it points at.
    """
    target = link.get("type")
    if not target:
        return True
    held = policy.always_withhold.types
    if held and type_matches(held, target):
        return False
    for rule in policy.rules:
        if type_matches(rule.types, target):
            if rule.release:
                return True
            if not rule.areas and not rule.not_areas and rule.max_age_s is None:
                return False  # an unconditional withhold rule comes first
    return False


def decide(
    event: CotEvent,
    policy: Policy,
    now_ms: int,
    state: PolicyState,
    *,
    key: bytes | None = None,
) -> Decision:
    """Decide one event; ``key`` (HMAC key for pseudonyms) overrides the policy's ``secret``."""
    decision = _decide(event, policy, now_ms, state, key)
    if isinstance(decision, Release):
        state.counters.add(decision.rule, Outcome.RELEASE)
    elif isinstance(decision, Delay):
        state.counters.add(decision.rule, Outcome.DELAY)
    else:
        state.counters.add(decision.rule, decision.outcome)
    return decision


def _decide(
    event: CotEvent, policy: Policy, now_ms: int, state: PolicyState, key: bytes | None
) -> Decision:
    rule, withheld, _ = select(policy, event, now_ms, explain=False)
    if withheld is not None:
        return withheld
    assert rule is not None
    t = rule.transform
    if t.delay_s > 0:
        until = event.time + round(t.delay_s * 1000)
        if now_ms < until:
            return Delay(until, rule.name)
    slot = (rule.name, event.uid)
    if t.min_interval_s > 0:
        last = state.last_release_ms.get(slot)
        if last is not None and now_ms - last < t.min_interval_s * 1000:
            return Withhold(
                f"rate limit: released {now_ms - last} ms ago, min_interval_s = "
                f"{t.min_interval_s:g}",
                rule.name,
                Outcome.RATE_LIMIT,
            )
    out, done = release(event, policy, rule, now_ms, key)
    if t.min_interval_s > 0:
        if len(state.last_release_ms) >= MAX_TRACKED:
            horizon = max((r.transform.min_interval_s for r in policy.rules), default=0.0)
            state.prune(now_ms, round(horizon * 1000))
        state.last_release_ms[slot] = now_ms
    return Release(out, rule.name, done)


def release(
    event: CotEvent, policy: Policy, rule: Rule, now_ms: int, key: bytes | None = None
) -> tuple[CotEvent, tuple[str, ...]]:
    """Step 5: the event as the partner receives it, and what was done to it."""
    t = rule.transform
    rename = None
    if policy.pseudonymise:
        secret = key if key is not None else policy.secret
        if not secret:
            raise ValueError(
                f"policy {policy.name!r} pseudonymises uids but has no secret: set `secret` "
                "in the policy or pass key="
            )

        def rename(uid: str) -> str:
            return pseudonym(uid, secret, policy.partner, policy.pseudonym_prefix)

    cell = None
    precision = None
    if t.grid_m > 0:
        # What the snapping may have moved the position by, so that a receiver can widen its
        # separation volume by this once instead of by the inflated ce (issue 14).
        cell = grid_cell(event.point.lat, event.point.lon, t.grid_m)
        precision = math.ceil(cell.radius_m)
    mark = _release_mark(policy, rule, now_ms, precision)
    plain = None if mark is None else plain_release(event.detail, t, mark)
    if plain is not None:
        detail, done_detail = plain
    else:
        marks = marking(policy.name, rule.name, policy.partner, policy.version, now_ms)
        if precision is not None:
            marks["precision_m"] = str(precision)
        detail, done_detail = rewrite_detail(
            event, t, rename, lambda link: link_released(policy, link), marks
        )
    done = list(done_detail[:-1])
    uid, point, stale = event.uid, event.point, event.stale
    if rename is not None:
        uid = rename(event.uid)
        done.insert(0, "pseudonymise uid")
    if t.grid_m > 0 or t.altitude_m > 0:
        point = coarsen(event.point, t.grid_m, t.altitude_m, cell)
        done += _coarsened(t.grid_m, t.altitude_m)
    if t.delay_s > 0 and now_ms > event.time:
        stale = event.stale + (now_ms - event.time)
        done.append(f"stale moved by {(now_ms - event.time) / 1000:g} s (delayed)")
    done.append(done_detail[-1])
    # Built directly (no raw frame: it is encoded afresh); dataclasses.replace cost ~10 us.
    # (uid, type, how, time, start, stale, point, detail, access, qos, opex, caveat,
    # releasable_to), positionally: keywords cost a third more here.
    out = CotEvent(
        uid, event.type, event.how, event.time, event.start, stale, point, detail,
        event.access, event.qos, event.opex, event.caveat, event.releasable_to,
    )  # fmt: skip
    return out, tuple(done)


@functools.lru_cache(maxsize=64)
def _coarsened(grid_m: float, altitude_m: float) -> tuple[str, ...]:
    done = []
    if grid_m > 0:
        done.append(f"snap position to {grid_m:g} m grid")
    if altitude_m > 0:
        done.append(f"round hae to {altitude_m:g} m")
    return tuple(done)


# The <__release> element of the latest releases: every release of one batch (one clock
# reading) under one rule carries the same marking, but for the grid cell's precision.
_MARKS: dict[tuple[int, str, int, int | None], tuple[Policy, str | None]] = {}
MARKS_KEPT = 64


def _release_mark(policy: Policy, rule: Rule, now_ms: int, precision: int | None) -> str | None:
    """The ``<__release>`` element's text for the plain path, or None when its values need
    escaping (the parsing path writes it then)."""
    key = (id(policy), rule.name, now_ms, precision)
    hit = _MARKS.get(key)
    if hit is not None and hit[0] is policy:
        return hit[1]
    marks = marking(policy.name, rule.name, policy.partner, policy.version, now_ms)
    if precision is not None:
        marks["precision_m"] = str(precision)
    text = release_element(marks) if marking_plain(marks) else None
    if len(_MARKS) >= MARKS_KEPT:
        _MARKS.clear()
    _MARKS[key] = (policy, text)
    return text
