"""``accord policy check FILE`` and ``accord policy explain FILE EVENT.xml [--now ISO]``.

``check`` exits 0 with a summary of the rules, or 2 with one ``FILE:LINE: key: why`` line per
problem. ``explain`` shows which rule decides an event and what the partner would receive.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accord.cot.errors import MalformedEvent
from accord.cot.model import ms_from_iso
from accord.cot.xml import decode_xml
from accord.policy.explain import explain
from accord.policy.lines import PolicyError
from accord.policy.model import Policy, Rule
from accord.policy.parse import decode_policy

EXIT_USAGE = 2
# explain needs some key for pseudonyms when neither the policy nor --secret gives one: a
# fixed, visible placeholder, so the output says "this is not the real pseudonym".
PLACEHOLDER_KEY = b"accord-policy-explain-placeholder"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("policy", help="check a release policy, or explain a decision")
    verbs = p.add_subparsers(dest="policy_command", required=True)
    check = verbs.add_parser("check", help="validate a policy file (exit 2 on errors)")
    check.add_argument("file", type=Path, help="policy TOML file")
    ex = verbs.add_parser("explain", help="show which rule decides an event and what is sent")
    ex.add_argument("file", type=Path, help="policy TOML file")
    ex.add_argument("event", type=Path, help="one CoT <event> as XML")
    ex.add_argument("--now", help="decision time, ISO 8601 (default: the event's time)")
    ex.add_argument("--secret", help="HMAC key for pseudonyms (default: the policy's secret)")


def _load(path: Path) -> Policy | None:
    try:
        return decode_policy(path.read_bytes())
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue.format(str(path)), file=sys.stderr)
        return None


def _describe(rule: Rule) -> str:
    t = rule.transform
    parts = [f"types {', '.join(rule.types) or '*'}"]
    if rule.areas:
        parts.append(f"in {', '.join(rule.areas)}")
    if rule.not_areas:
        parts.append(f"not in {', '.join(rule.not_areas)}")
    if rule.max_age_s is not None:
        parts.append(f"age <= {rule.max_age_s:g} s")
    if not rule.release:
        return f"withhold: {'; '.join(parts)}"
    for value, text in (
        (t.grid_m, "grid {:g} m"),
        (t.altitude_m, "hae to {:g} m"),
        (t.delay_s, "delay {:g} s"),
        (t.min_interval_s, "1 per {:g} s"),
    ):
        if value:
            parts.append(text.format(value))
    if t.keep is not None:
        parts.append(f"keep only {', '.join(sorted(t.keep)) or 'nothing'}")
    return f"release: {'; '.join(parts)}"


def _check(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    if policy is None:
        return EXIT_USAGE
    print(f"{args.file}: policy {policy.name} for {policy.partner} ({policy.version})")
    print(f"  areas: {', '.join(policy.areas) or 'none'}")
    held = policy.always_withhold
    print(
        f"  always_withhold: types {', '.join(held.types) or '-'}; areas "
        f"{', '.join(held.areas) or '-'}"
    )
    for number, rule in enumerate(policy.rules, start=1):
        print(f"  {number}. {rule.name} (line {rule.line}): {_describe(rule)}")
    print("  otherwise: withhold (deny by default)")
    for share in policy.missions:
        named = [*share.missions, *(f"keyword {k}" for k in share.keywords)]
        print(
            f"  mission {share.name} (line {share.line}): {', '.join(named)}; shares "
            f"{', '.join(sorted(share.share)) or 'metadata only'}; accepts "
            f"{', '.join(sorted(share.accept)) or 'nothing'}"
        )
    if policy.pseudonymise and policy.secret is None:
        print("  note: pseudonymise = true without secret: the link must pass the key")
    return 0


def _explain(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    if policy is None:
        return EXIT_USAGE
    try:
        event = decode_xml(args.event.read_bytes())
    except MalformedEvent as exc:
        print(f"{args.event}: not a usable CoT event: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        now = event.time if args.now is None else ms_from_iso(args.now.replace("Z", "+00:00"))
    except ValueError:
        print(f"accord: error: --now {args.now!r} is not an ISO 8601 time", file=sys.stderr)
        return EXIT_USAGE
    key = args.secret.encode() if args.secret else None
    if policy.pseudonymise and key is None and policy.secret is None:
        print("note: no secret: pseudonyms below use a placeholder key", file=sys.stderr)
        key = PLACEHOLDER_KEY
    print(explain(event, policy, now, key))
    return 0


def run(args: argparse.Namespace) -> int:
    return {"check": _check, "explain": _explain}[args.policy_command](args)
