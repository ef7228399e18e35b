"""release_departure(): a released uid's t-x-d-d, in the shape the partner knows the uid by."""

from __future__ import annotations

from accord.cot.xml import decode_xml, encode_xml, parse_fragment
from accord.domain.routing import deleted
from accord.policy.apply import Outcome, PolicyState
from accord.policy.departure import DEPARTURE_RULE, release_departure
from tests.policy.helpers import IN_BASE, NOW_MS, event, policy


def test_a_departure_names_the_uid_as_released_and_keeps_nothing_else() -> None:
    rules = policy()
    state = PolicyState()
    link = '<link uid="ANDROID-1" type="a-f-G-U-C" relation="p-p"/><remarks>gone home</remarks>'
    gone = event("t-x-d-d", IN_BASE, uid="delete-1", detail=link)
    decision = release_departure(gone, rules, "org-a.1234", "a-f-G-U-C", NOW_MS, state)
    out = decision.event
    assert decision.rule == DEPARTURE_RULE
    assert (out.uid, out.type, out.time, out.stale) == (gone.uid, gone.type, gone.time, gone.stale)
    assert deleted(out) == ("org-a.1234", "a-f-G-U-C")
    assert out.point.lat == out.point.lon == 0.0  # where the delete was made is not released
    root = parse_fragment(f"<detail>{out.detail.xml}</detail>")
    assert [child.tag for child in root] == ["link", "__release"]
    mark = root.find("__release")
    assert mark is not None
    assert (mark.get("rule"), mark.get("partner")) == (DEPARTURE_RULE, "org-b")
    assert state.counters.get(DEPARTURE_RULE, Outcome.RELEASE) == 1
    assert decode_xml(encode_xml(out)) == out


def test_the_force_delete_flag_atak_puts_on_a_delete_is_kept() -> None:
    gone = event("t-x-d-d", uid="delete-1", detail='<link uid="m-1"/><__forcedelete/>')
    out = release_departure(gone, policy(), "org-a.m", "", NOW_MS, PolicyState(), force=True)
    root = parse_fragment(f"<detail>{out.event.detail.xml}</detail>")
    assert [child.tag for child in root] == ["link", "__forcedelete", "__release"]
    assert deleted(out.event) == ("org-a.m", "")
