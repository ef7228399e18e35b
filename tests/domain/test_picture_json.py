"""The web feed's feature text (:func:`feature_json`) is exactly ``json.dumps`` of the feature.

The fast encoder formats a track's fields itself; these properties hold it to the reference
(:func:`to_feature` through ``json.dumps``) over hostile strings, odd numbers, and details
made of every part the map reads, so the browser can never be handed different JSON."""

from __future__ import annotations

import json
import re
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.cot.model import UNKNOWN_VALUE, Contact, CotEvent, Detail, Point
from accord.domain.picture import feature_json, to_feature

NOW = 1_796_000_000_000


def reference(event: CotEvent, now_ms: int) -> str:
    return json.dumps(to_feature(event, now_ms), separators=(",", ":"), allow_nan=False)


# XML-safe text (no controls, no surrogates), for attribute values and element text.
xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
# Any text for fields that are not XML: uid, type, how, callsign (quotes, controls, unicode).
any_text = st.text(max_size=30)
number_text = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["", "abc", "nan", "inf", "-0", "1e400", " 12 "]),
)


def attrs(**values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Some of the given attributes, each quoted for XML."""
    return st.fixed_dictionaries({}, optional=values).map(
        lambda d: "".join(f" {k}={quoteattr(v)}" for k, v in d.items())
    )


parts = st.one_of(
    attrs(course=number_text, speed=number_text).map(lambda a: f"<track{a}/>"),
    attrs(
        azimuth=number_text,
        fov=number_text,
        range=number_text,
        elevation=number_text,
        model=xml_text,
    ).map(lambda a: f"<sensor{a}/>"),
    attrs(
        partner=xml_text,
        organisation=xml_text,
        policy=xml_text,
        rule=xml_text,
        version=xml_text,
        precision_m=number_text,
    ).map(lambda a: f"<__release{a}/>"),
    attrs(uid=xml_text, relation=xml_text, type=xml_text, point=xml_text).map(
        lambda a: f"<link{a}/>"
    ),
    st.tuples(st.floats(-90, 90), st.floats(-180, 180)).map(
        lambda p: f'<link point="{p[0]!r},{p[1]!r},0"/>'
    ),
    attrs(url=xml_text).map(lambda a: f"<__video{a}/>"),
    xml_text.map(lambda t: f"<remarks>{escape(t)}</remarks>"),
    attrs(battery=number_text).map(lambda a: f"<status{a}/>"),
    attrs(voltage=number_text, flightTimeRemaining=number_text).map(lambda a: f"<vehicle{a}/>"),
    attrs(rssi=number_text).map(lambda a: f"<_radio{a}/>"),
    st.just('<__chat chatroom="All" senderCallsign="A"/>'),
    st.just("<unclosed"),  # a detail that does not parse
)
types = st.one_of(
    st.sampled_from(
        [
            "a-f-G-U-C",
            "a-h-A-M-F-Q",
            "a-u-S",
            "a",
            "b-m-p-s-p-i",
            "b-m-r",
            "b-t-f",
            "t-x-d-d",
            "u-d-f",
            "u-d-c-c",
            "b-a-o-c",
            "b-a-g",
            "b-a-o-can",
        ]
    ),
    any_text,
)
coordinate = st.floats(allow_nan=False, allow_infinity=False)
optional = st.one_of(st.just(UNKNOWN_VALUE), st.floats(-1e6, 1e7), st.integers(0, 100))


@st.composite
def events(draw: st.DrawFn) -> CotEvent:
    callsign = draw(st.none() | any_text | st.text(min_size=121, max_size=124))  # cut at 120
    return CotEvent(
        uid=draw(any_text),
        type=draw(types),
        how=draw(any_text),
        time=draw(st.integers(0, 2**45)),
        start=0,
        stale=draw(st.integers(0, 2**45)),
        point=Point(
            draw(st.floats(-90, 90) | st.integers(-90, 90)),
            draw(st.floats(-180, 180)),
            draw(optional),
            draw(optional),
        ),
        detail=Detail(
            xml="".join(draw(st.lists(parts, max_size=6))),
            contact=None if callsign is None else Contact(callsign),
        ),
    )


@settings(max_examples=400)
@given(events(), st.integers(0, 2**45))
def test_the_feature_text_is_what_json_dumps_writes(event: CotEvent, now_ms: int) -> None:
    text = feature_json(event, now_ms)
    assert text == reference(event, now_ms)
    assert json.loads(text) == to_feature(event, now_ms)


@given(events(), st.sampled_from([float("nan"), float("inf"), -float("inf")]), st.integers(0, 3))
def test_a_number_json_cannot_carry_is_refused_as_json_dumps_refuses_it(
    event: CotEvent, bad: float, which: int
) -> None:
    """The decoder makes no such point, but an event built in the server could: the same
    ValueError as before (an infinite height or error is "unknown", drawn as null)."""
    values = [event.point.lat, event.point.lon, event.point.hae, event.point.ce]
    values[which] = bad
    broken = CotEvent(
        event.uid,
        "a-f-G-U-C",
        event.how,
        event.time,
        0,
        event.stale,
        Point(*values),
        event.detail,
    )
    refused: ValueError | None = None
    try:
        expected = reference(broken, NOW)
    except ValueError as exc:
        refused = exc
    if refused is not None:
        assert which < 2 or bad != float("inf")  # only an unknown-sized height/error passes
        with pytest.raises(ValueError, match=re.escape(str(refused))):
            feature_json(broken, NOW)
    else:
        assert which >= 2
        assert bad == float("inf")
        assert feature_json(broken, NOW) == expected


def test_a_track_report_is_encoded_from_its_detail_once() -> None:
    """Two reports of one track with the same detail share its encoded part (the fast path)
    and still differ in what changed: the point and the times."""
    detail = Detail(xml='<track course="90" speed="4.5"/><remarks>"hi"</remarks>',
                    contact=Contact('A "quoted" \u00e9'))  # fmt: skip
    first = CotEvent("U-1", "a-f-G-U-C", "m-g", NOW, NOW, NOW + 10_000, Point(48.0, 11.0, 5, 3.5),
                     detail)  # fmt: skip
    second = CotEvent("U-1", "a-f-G-U-C", "m-g", NOW + 1000, NOW, NOW + 11_000,
                      Point(48.1, 11.0), detail)  # fmt: skip
    a, b = json.loads(feature_json(first, NOW)), json.loads(feature_json(second, NOW))
    assert (a["lat"], a["hae"], a["ce"], a["stale_in_ms"]) == (48.0, 5, 3.5, 10_000)
    assert (b["lat"], b["hae"], b["ce"], b["stale_in_ms"]) == (48.1, None, None, 11_000)
    assert a["callsign"] == 'A "quoted" \u00e9'
    assert a["remarks"] == '"hi"'
    assert (a["course"], a["speed"]) == (b["course"], b["speed"]) == (90.0, 4.5)
