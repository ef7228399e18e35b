"""A partner's detail passed on as received (the receive's text path) is the same text the
rebuild makes: for any detail that parses, kept or rebuilt, the event is the same."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from accord.cot.errors import MalformedEvent
from accord.cot.model import CotEvent, Point
from accord.cot.xml import detail_from_xml
from accord.federation.codec import Received, from_federated, to_federated
from accord.federation.proto import fig_pb2

NOW = 1_796_292_000_000
TAGS = ("contact", "track", "__group", "remarks", "marti", "dest", "link", "_x.y-z", "__chat")
# Text with what lxml escapes, what it does not and what XML cannot carry (refused by the parser).
TEXT = st.text(alphabet=st.sampled_from("ab &<>\"'\t\n\r\u00e9\u4e2d;#x"), max_size=8)
ATTRS = st.lists(st.tuples(st.sampled_from(("callsign", "uid", "a", "b_c")), TEXT), max_size=3)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    el = etree.Element(draw(st.sampled_from(TAGS)))
    for name, value in draw(ATTRS):
        with contextlib.suppress(ValueError):  # a character XML cannot carry
            el.set(name, value)
    if draw(st.booleans()):
        with contextlib.suppress(ValueError):
            el.text = draw(TEXT) or None
    if depth < 3:
        for child in draw(st.lists(trees(depth + 1), max_size=2)):
            el.append(child)
    return el


def _serialised(children: list[etree._Element]) -> str:
    return "".join(etree.tostring(c, encoding="unicode") for c in children)


# Ways a detail may be written that lxml would write otherwise: the receive must not keep them.
SPELLINGS = (
    lambda x: x,
    lambda x: x.replace('"', "'"),
    lambda x: x.replace("/>", " />"),
    lambda x: x.replace(" ", "  ", 1),
    lambda x: x.replace("&gt;", ">"),
    lambda x: x.replace("&amp;", "&#38;"),
    lambda x: x.replace("a", "&#97;", 1),
    lambda x: x.replace("/>", "></x>".replace("x", "y"), 1),
    lambda x: "<!-- c -->" + x,
    lambda x: "<?pi x?>" + x,
    lambda x: x + " ",
    lambda x: x.replace("&#10;", "\n"),
    lambda x: x.replace("<contact", '<contact xmlns="urn:x"', 1),
    lambda x: x.replace(">", "><![CDATA[a<b]]>", 1),
)


def _message(other: str, *, screen_name: str = "", speed: float = 0.0) -> fig_pb2.FederatedEvent:
    event = CotEvent("u-1", "a-f-G-U-C", "m-g", NOW, NOW, NOW + 60_000, Point(1.0, 2.0))
    msg = to_federated(event, [("srv-a", "A"), ("srv-b", "B")], 0)
    msg.event.other, msg.event.screenName, msg.event.speed = other, screen_name, speed
    return msg


def _received(msg: fig_pb2.FederatedEvent, prefix: str) -> Received | str:
    try:
        return from_federated(msg, via="srv-b", now_ms=NOW, callsign_prefix=prefix)
    except MalformedEvent as exc:
        return exc.reason.name


def _rebuilt(other: str) -> str:
    """The same detail with a space before its first child: never kept (it has text), and
    the rebuild drops that text, as it drops every tail between the children."""
    return other.replace("<detail>", "<detail> ", 1)


@settings(max_examples=300, deadline=None)
@given(
    children=st.lists(trees(), max_size=3),
    spelling=st.sampled_from(range(len(SPELLINGS))),
    prefix=st.sampled_from(("", "B.", "burst")),
    screen_name=st.sampled_from(("", "sn")),
    speed=st.sampled_from((0.0, 3.5)),
)
def test_a_detail_kept_as_received_is_the_one_the_rebuild_makes(
    children: list[etree._Element], spelling: int, prefix: str, screen_name: str, speed: float
) -> None:
    inner = SPELLINGS[spelling](_serialised(children))
    other = f"<detail>{inner}</detail>"
    kept = _received(_message(other, screen_name=screen_name, speed=speed), prefix)
    rebuilt = _received(_message(_rebuilt(other), screen_name=screen_name, speed=speed), prefix)
    if isinstance(kept, str) or isinstance(rebuilt, str):  # refused: both alike
        assert kept == rebuilt
        return
    assert kept.event == rebuilt.event
    assert kept.event.detail.xml == rebuilt.event.detail.xml
    assert kept.provenance == rebuilt.provenance
    assert kept.event.detail == detail_from_xml(kept.event.detail.xml)  # it reads back the same


@pytest.mark.parametrize(
    "other",
    [
        '<detail><contact callsign="x" endpoint="*:-1:stcp"/><__group name="Cyan"/></detail>',
        "<detail></detail>",
        "<detail><remarks>a &amp; b &lt; c &gt; d \" '</remarks></detail>",
        '<detail><link uid="&quot;&#10;&#9;&#13;&lt;&gt;&amp;"/></detail>',
    ],
)
def test_what_lxml_writes_is_kept_with_the_flow_tags_appended(other: str) -> None:
    got = from_federated(_message(other), via="srv-b", now_ms=NOW)
    inner = other.removeprefix("<detail>").removesuffix("</detail>")
    stamp = "2026-12-03T10:00:00.000Z"
    assert got.event.detail.xml == f'{inner}<_flow-tags_ srv-a="{stamp}" srv-b="{stamp}"/>'
    rebuilt = _received(_message(_rebuilt(other)), "")
    assert isinstance(rebuilt, Received)
    assert got.event == rebuilt.event


def test_a_server_id_that_is_no_xml_name_is_still_refused() -> None:
    msg = _message('<detail><contact callsign="x"/></detail>')
    msg.federateProvenance[0].federationServerId = "not a name"
    with pytest.raises(MalformedEvent):
        from_federated(msg, via="srv-b", now_ms=NOW)
