"""The bus's pure parts, without NATS or an event loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.cluster import subjects
from accord.cot.model import WireFormat


def test_subjects_are_by_organisation_and_group() -> None:
    assert subjects.event_subject("acme", "Blue") == "accord.acme.ev.Blue"
    assert subjects.sa_subject("acme", "Blue", "ANDROID-1") == "accord.acme.sa.Blue.ANDROID-1"
    assert subjects.sa_filter("acme", "Blue") == "accord.acme.sa.Blue.>"
    assert subjects.event_subject("acme", "__ANON__") == "accord.acme.ev.__ANON__"


@pytest.mark.parametrize("name", ["a.b", "*", ">", "two words", "Ünits", "x~41", "a\tb"])
def test_unsafe_names_never_reach_the_subject(name: str) -> None:
    t = subjects.token(name)
    assert not set(t) & set(".*> \t")
    assert subjects.untoken(t) == name
    assert len(subjects.event_subject("o", name).split(".")) == 4  # still one token


@given(st.text(min_size=1))
def test_tokens_round_trip_and_differ(name: str) -> None:
    assert subjects.untoken(subjects.token(name)) == name
    assert subjects.token(name) != subjects.token(name + "x")


def test_stream_name_has_no_dot() -> None:
    assert "." not in subjects.sa_stream("a.b")
    assert subjects.sa_stream("a.b") != subjects.sa_stream("ab")


def test_interest_says_what_was_gained_and_lost() -> None:
    interest = subjects.Interest()
    first = interest.update(["Blue", "Red"])
    assert first.gained == {"Blue", "Red"}
    assert not first.lost
    second = interest.update(["Blue", "Green"])
    assert second.gained == {"Green"}
    assert second.lost == {"Red"}
    assert interest.update(["Blue", "Green"]).gained == frozenset()
    assert interest.update([]).lost == {"Blue", "Green"}


def test_headers_round_trip() -> None:
    route = subjects.Route("node-a", "b1.7", WireFormat.PROTOBUF, frozenset({"Blue", "a.b"}))
    headers = subjects.encode_headers(route)
    assert headers["Accord-Groups"] == "Blue,a~2Eb"
    assert subjects.decode_headers(headers) == route
    assert "Accord-Was" not in headers
    again = subjects.Route("a", "1", WireFormat.XML, frozenset({"Red"}), frozenset({"Blue", "x y"}))
    headers = subjects.encode_headers(again)
    assert headers["Accord-Was"] == "Blue,x~20y"
    assert subjects.decode_headers(headers) == again
    assert "Accord-Source" not in headers  # a client's event: nothing more on the bus


def test_the_source_of_a_drone_feed_or_partner_crosses() -> None:
    for source in ("own", "partner ORG B"):
        route = subjects.Route("a", "1", WireFormat.XML, frozenset({"Red"}), source=source)
        headers = subjects.encode_headers(route)
        assert subjects.decode_headers(headers) == route
    assert headers["Accord-Source"] == "partner~20ORG~20B"
    headers["Accord-Source"] = "a.b"
    with pytest.raises(subjects.BusHeaderError, match="not a subject token"):
        subjects.decode_headers(headers)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        (None, "no routing headers"),
        ({"Accord-Node": "a"}, "missing header"),
        (
            {"Accord-Node": "a", "Accord-Id": "1", "Accord-Format": "json", "Accord-Groups": "B"},
            "expected xml or proto",
        ),
        (
            {"Accord-Node": "a", "Accord-Id": "1", "Accord-Format": "xml", "Accord-Groups": "a.b"},
            "not a subject token",
        ),
        (
            {"Accord-Node": "a", "Accord-Id": "1", "Accord-Format": "xml", "Accord-Groups": "~FF"},
            "not UTF-8",
        ),
    ],
)
def test_bad_headers_are_refused_clearly(headers: dict[str, str] | None, error: str) -> None:
    with pytest.raises(subjects.BusHeaderError, match=error):
        subjects.decode_headers(headers)


def test_no_group_no_publication() -> None:
    with pytest.raises(ValueError, match="no group"):
        subjects.encode_headers(subjects.Route("a", "1", WireFormat.XML, frozenset()))


def test_seen_drops_copies_within_its_window() -> None:
    seen = subjects.Seen(size=2)
    assert seen.first("a")
    assert not seen.first("a")
    assert seen.first("b")
    assert seen.first("c")
    assert seen.first("a")
