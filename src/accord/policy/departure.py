"""The departure of something already released: a ``t-x-d-d`` a partner may always receive.

A policy that withholds ``t-*`` (control and delete notices) would otherwise leave a contact it
released on the partner's map until its SA went stale. That a released uid is gone tells the
partner nothing new, so the caller (which knows what it released, see
:class:`accord.federation.gate.PolicyGate`) releases it under the rule :data:`DEPARTURE_RULE`,
in the shape the partner knows it: the uid as released (its pseudonym), no position, nothing
of the original detail but the link and a ``<__forcedelete/>`` flag, marked like any release.
"""

from __future__ import annotations

from lxml import etree

from accord.cot.model import CotEvent, Point
from accord.cot.xml import inspect_detail
from accord.policy.apply import Outcome, PolicyState, Release
from accord.policy.model import RELEASE_TAG, Policy
from accord.policy.transform import marking

DEPARTURE_RULE = "(departure)"  # the rule name counted and recorded for such releases
FORCE_DELETE = "__forcedelete"  # ATAK's flag to delete an object it did not create


def release_departure(
    event: CotEvent,
    policy: Policy,
    released_uid: str,
    link_type: str,
    now_ms: int,
    state: PolicyState,
    *,
    force: bool = False,
) -> Release:
    """``event`` (a ``t-x-d-d``) as the partner receives it, naming ``released_uid`` (what the
    partner was given for the deleted uid); counted in ``state`` like any decision."""
    root = etree.Element("detail")
    link = etree.SubElement(root, "link", uid=released_uid, relation="p-p")
    if link_type:
        link.set("type", link_type)
    if force:
        etree.SubElement(root, FORCE_DELETE)
    mark = etree.SubElement(root, RELEASE_TAG)
    for name, value in marking(
        policy.name, DEPARTURE_RULE, policy.partner, policy.version, now_ms
    ).items():
        mark.set(name, value)
    out = CotEvent(
        uid=event.uid, type=event.type, how=event.how, time=event.time, start=event.start,
        stale=event.stale, point=Point(), detail=inspect_detail(root, None),
    )  # fmt: skip
    state.counters.add(DEPARTURE_RULE, Outcome.RELEASE)
    done = ("name the uid as released", "drop position and detail", f"mark <{RELEASE_TAG}>")
    return Release(out, DEPARTURE_RULE, done)
