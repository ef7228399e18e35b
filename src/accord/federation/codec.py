"""CoT event <-> federation ``FederatedEvent`` (reference tak-protocol §6.4), and provenance.

Sans-IO. The whole ``<detail>`` travels in ``GeoEvent.other``; the callsign and directed
targets are also lifted into their own fields, as the TAK Server does. Which servers an event
went through travels as ``federateProvenance`` on the wire and, inside this server, as the
attributes of a ``<_flow-tags_>`` detail element (one per server id, valued with the time it
passed): a link reads them to never hand an event back to a server it came through.

Contact presence travels as the TAK Server signals it (§6.5), in ``FederatedEvent.contact``:
CREATE beside a contact's own report, DELETE beside its departure (a ``t-x-d-d``). A DELETE
with no event, which is how a TAK Server sends a departure, is read as that ``t-x-d-d``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from accord.cot.errors import Malformation, MalformedEvent
from accord.cot.model import MAX_TIME_MS, UNKNOWN_VALUE, CotEvent, Detail, Point, iso_from_ms
from accord.cot.xml import (
    DEFAULT_HOW,
    MAX_DEPTH,
    detail_with_text,
    inspect_detail,
    parse_fragment,
)
from accord.domain.routing import DELETE_STALE_MS, DELETE_TYPE, deleted
from accord.federation.proto import fig_pb2

FLOW_TAGS = "_flow-tags_"
# The TAK Server puts the deleted object's CoT type in a DELETE entry's callsign (its
# ProtoBufHelper.delContact2protoBuf); anything else there is not trusted as a link type.
_COT_TYPE = re.compile(r"[a-z](-[A-Za-z0-9_.]+)+")
DEPARTED_TYPE = "a-f-G"  # the link type of a departure whose entry names none
# The text lxml writes for elements without namespaces (``tostring(encoding="unicode")``):
# double-quoted attributes one space apart, ``&<>"`` and tab/newline/CR escaped in them,
# ``&<>`` and CR in text, no comments, instructions, CDATA or entities beyond those. A partner's
# detail in this form is passed on as received, with our elements appended, instead of being
# serialised again (the same text; tests/federation/test_codec_text.py compares both ways).
_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_ATTR = r'(?:[^"&<>\n\r\t]|&(?:amp|lt|gt|quot|#10|#13|#9);)*'
_SERIALISED = re.compile(
    rf'(?:<{_NAME}(?: {_NAME}="{_ATTR}")*/?>|</{_NAME}>|(?:[^<>&\r]|&(?:amp|lt|gt|#13);)+)*'
)
_SERVER_ID = re.compile(_NAME)  # an attribute name as written, no namespace


@dataclass(frozen=True, slots=True)
class Received:
    """An event from a partner, with the servers it came through (oldest first)."""

    event: CotEvent
    provenance: tuple[str, ...]
    hops: int  # federateHops.currentHops as sent
    max_hops: int  # 0 = the sender set no limit


def flow_tags(event: CotEvent) -> tuple[str, ...]:
    """The server ids of the event's ``<_flow-tags_>``, in document order."""
    if FLOW_TAGS not in event.detail.xml:
        return ()
    return _flow_tags(event.detail.xml)


@functools.lru_cache(maxsize=1024)
def _flow_tags(xml: str) -> tuple[str, ...]:
    # Cached by the detail text: every partner link asks about the same relayed event, and
    # the parse is the costly part.
    tags = parse_fragment(f"<detail>{xml}</detail>").find(FLOW_TAGS)
    return () if tags is None else tuple(str(k) for k in tags.attrib)


def to_federated(
    event: CotEvent, provenance: Iterable[tuple[str, str]], max_hops: int
) -> fig_pb2.FederatedEvent:
    """The message for ``event``; ``provenance`` = (server id, name) pairs, ours last."""
    msg = fig_pb2.FederatedEvent()
    geo = msg.event
    geo.sendTime, geo.startTime, geo.staleTime = event.time, event.start, event.stale
    p = event.point
    geo.lat, geo.lon, geo.hae, geo.ce, geo.le = p.lat, p.lon, p.hae, p.ce, p.le
    geo.uid, geo.type, geo.coordSource = event.uid, event.type, event.how
    geo.access, geo.caveat, geo.releaseableTo = event.access, event.caveat, event.releasable_to
    detail = event.detail
    xml = detail.xml
    if FLOW_TAGS in xml:  # carried as federateProvenance instead
        root = parse_fragment(f"<detail>{xml}</detail>")
        for tags in root.findall(FLOW_TAGS):
            root.remove(tags)
        xml = "".join(etree.tostring(c, encoding="unicode", with_tail=False) for c in root)
    geo.other = f"<detail>{xml}</detail>" if xml else ""
    contact = detail.contact
    if contact is not None:
        geo.screenName = contact.callsign
        if contact.endpoint and contact.callsign:  # a contact's own report (as the roster's)
            entry = msg.contact
            entry.operation, entry.uid, entry.callsign = fig_pb2.CREATE, event.uid, contact.callsign
    elif event.type == DELETE_TYPE:
        gone = deleted(event)
        if gone is not None:  # the link type goes in callsign, as the TAK Server does
            entry = msg.contact
            entry.operation, entry.uid, entry.callsign = fig_pb2.DELETE, gone[0], gone[1]
    for dest in detail.dests:
        if dest.kind == "uid":
            geo.ptpUids.append(dest.value)
        elif dest.kind == "callsign":
            geo.ptpCallsigns.append(dest.value)
        elif dest.kind == "mission":
            geo.missionNames.append(dest.value)
    count = 0
    for server, name in provenance:
        msg.federateProvenance.add(federationServerId=server, federationServerName=name)
        count += 1
    msg.federateHops.maxHops, msg.federateHops.currentHops = max_hops, count
    return msg


def from_federated(
    msg: fig_pb2.FederatedEvent,
    *,
    via: str,
    now_ms: int,
    callsign_prefix: str = "",
    max_depth: int = MAX_DEPTH,
) -> Received:
    """Rebuild the event a partner sent; ``via`` is that partner's server id, added to the
    provenance when it did not name itself. :class:`MalformedEvent` when it is not an event."""
    geo = _geo_event(msg, now_ms)
    if not geo.uid or not geo.type:
        raise MalformedEvent("federated event without uid or type", Malformation.INVALID_EVENT)
    for t in (geo.sendTime, geo.startTime, geo.staleTime):
        if not 0 <= t <= MAX_TIME_MS:
            raise MalformedEvent("federated event time out of range", Malformation.INVALID_EVENT)
    provenance = [p.federationServerId for p in msg.federateProvenance if p.federationServerId]
    if not provenance or provenance[-1] != via:
        provenance.append(via)
    other = geo.other
    root = parse_fragment(other) if other.strip() else etree.Element("detail")
    if root.tag != "detail":
        wrapper = etree.Element("detail")
        wrapper.append(root)
        root = wrapper
    # The first <contact>, <track> and <_flow-tags_> children (what find() returns), in one
    # pass: ElementPath cost more than the rest of rebuilding the detail.
    contact = track = tags = None
    tails = False
    for child in root:
        tails = tails or child.tail is not None
        tag = child.tag
        if tag == "contact":
            contact = child if contact is None else contact
        elif tag == "track":
            track = child if track is None else track
        elif tag == FLOW_TAGS and tags is None:
            tags = child
    stamp = iso_from_ms(now_ms)
    kept = _as_received(root, other, contact, track, tags, tails, geo, callsign_prefix)
    if kept is not None:  # the common event: its text kept, the flow tags appended
        names = tuple(dict.fromkeys(provenance))
        if all(_SERVER_ID.fullmatch(name) for name in names):
            marks = " ".join(f'{name}="{stamp}"' for name in names)
            xml = f"{kept}<{FLOW_TAGS} {marks}/>"
            return _received(msg, geo, detail_with_text(root, xml, max_depth), provenance)
    if contact is None and geo.screenName:
        contact = etree.SubElement(root, "contact", callsign=geo.screenName)
    if contact is not None and callsign_prefix and contact.get("callsign"):
        callsign = contact.get("callsign", "")
        if not callsign.startswith(callsign_prefix):
            contact.set("callsign", callsign_prefix + callsign)
    if track is None and (geo.speed or geo.course):
        etree.SubElement(root, "track", speed=repr(geo.speed), course=repr(geo.course))
    if tags is None:
        tags = etree.SubElement(root, FLOW_TAGS)
    for server in provenance:
        try:
            if tags.get(server) is None:
                tags.set(server, stamp)
        except ValueError:
            raise MalformedEvent(
                f"federation server id {server!r} is not an XML name", Malformation.INVALID_EVENT
            ) from None
    return _received(msg, geo, inspect_detail(root, max_depth), provenance)


def _as_received(
    root: etree._Element,
    other: str,
    contact: etree._Element | None,
    track: etree._Element | None,
    tags: etree._Element | None,
    tails: bool,
    geo: fig_pb2.GeoEvent,
    callsign_prefix: str,
) -> str | None:
    """The text of the detail's children when it is already what lxml would write and the
    receive adds nothing but the flow tags; None when it must be rebuilt."""
    if (
        tags is not None
        or tails
        or root.text is not None
        or (contact is None and geo.screenName)
        or (track is None and (geo.speed or geo.course))
        or not other.startswith("<detail>")
        or not other.endswith("</detail>")
    ):
        return None
    if contact is not None and callsign_prefix:
        callsign = contact.get("callsign", "")
        if callsign and not callsign.startswith(callsign_prefix):
            return None
    inner = other[len("<detail>") : -len("</detail>")]
    if "></" in inner or "xmlns" in inner or _SERIALISED.fullmatch(inner) is None:
        return None
    return inner


def _received(
    msg: fig_pb2.FederatedEvent,
    geo: fig_pb2.GeoEvent,
    detail: Detail,
    provenance: list[str],
) -> Received:
    event = CotEvent(
        uid=geo.uid,
        type=geo.type,
        how=geo.coordSource or DEFAULT_HOW,
        time=geo.sendTime,
        start=geo.startTime,
        stale=geo.staleTime,
        point=Point(geo.lat, geo.lon, geo.hae, geo.ce, geo.le),
        detail=detail,
        access=geo.access,
        caveat=geo.caveat,
        releasable_to=geo.releaseableTo,
    )
    hops = msg.federateHops
    return Received(event, tuple(provenance), int(hops.currentHops), int(hops.maxHops))


def _geo_event(msg: fig_pb2.FederatedEvent, now_ms: int) -> fig_pb2.GeoEvent:
    """The event a message carries. A contact DELETE makes it a departure, handled once: its
    event when that is the ``t-x-d-d`` (Accord sends both), else a ``t-x-d-d`` made from the
    entry (a TAK Server sends the entry alone); an event beside a DELETE that is not the
    delete is stale news of a contact that left and is not passed on."""
    entry = msg.contact
    if entry.operation != fig_pb2.DELETE or not entry.uid:
        if not msg.HasField("event"):
            raise MalformedEvent("federated message without an event", Malformation.INVALID_EVENT)
        return msg.event
    if msg.HasField("event") and msg.event.type == DELETE_TYPE:
        return msg.event
    try:
        link = etree.Element("link", uid=entry.uid, relation="p-p")
    except ValueError:  # lxml refuses characters XML cannot carry
        raise MalformedEvent("contact uid is not XML text", Malformation.INVALID_EVENT) from None
    link.set("type", entry.callsign if _COT_TYPE.fullmatch(entry.callsign) else DEPARTED_TYPE)
    # A deterministic uid (no randomness here): a repeat of the same DELETE within the same
    # millisecond is then one event to the duplicate filter, which is what it is.
    return fig_pb2.GeoEvent(
        uid=f"{entry.uid}.departed",
        type=DELETE_TYPE,
        coordSource=DEFAULT_HOW,
        sendTime=now_ms,
        startTime=now_ms,
        staleTime=now_ms + DELETE_STALE_MS,
        hae=UNKNOWN_VALUE,
        ce=UNKNOWN_VALUE,
        le=UNKNOWN_VALUE,
        other="<detail>" + etree.tostring(link, encoding="unicode") + "</detail>",
    )
