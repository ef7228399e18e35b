"""TAK protocol version 1: ``TakMessage`` <-> :class:`CotEvent`.

The only module that touches the generated protobuf classes (from the ``takproto`` package,
whose field numbers match reference tak-protocol §2.5). Mapping rules are §2.6: a typed
sub-message is used only when the XML element has exactly the attributes it can hold; anything
else travels in ``xmlDetail``; on the way back ``xmlDetail`` wins over a typed duplicate.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError
from lxml import etree
from takproto.proto import TakMessage

from accord.cot.errors import Malformation, MalformedEvent
from accord.cot.model import MAX_TIME_MS, CotEvent, Point, WireFormat
from accord.cot.xml import DEFAULT_HOW, MAX_DEPTH, format_number, inspect_detail, parse_fragment

# Characters XML 1.0 cannot carry: a protobuf string holding one could never reach an XML client.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_uint(text: str) -> bool:
    return text.isdigit() and int(text) < 2**32


# tag -> (attributes allowed, attributes required, value check). The TAK Server uses a typed
# field only for exactly these shapes (StreamingProtoBufHelper.cot2protoBuf).
_TYPED: dict[str, tuple[frozenset[str], frozenset[str], Callable[[dict[str, str]], bool]]] = {
    "contact": (frozenset({"callsign", "endpoint"}), frozenset({"callsign"}), lambda a: True),
    "__group": (frozenset({"name", "role"}), frozenset({"name", "role"}), lambda a: True),
    "precisionlocation": (
        frozenset({"geopointsrc", "altsrc"}),
        frozenset({"geopointsrc", "altsrc"}),
        lambda a: True,
    ),
    "status": (frozenset({"battery"}), frozenset({"battery"}), lambda a: _is_uint(a["battery"])),
    "takv": (
        frozenset({"device", "platform", "os", "version"}),
        frozenset({"device", "platform", "os", "version"}),
        lambda a: True,
    ),
    "track": (
        frozenset({"speed", "course"}),
        frozenset({"speed", "course"}),
        lambda a: _is_float(a["speed"]) and _is_float(a["course"]),
    ),
}


def _typed_fits(el: etree._Element) -> bool:
    rule = _TYPED.get(el.tag) if isinstance(el.tag, str) else None
    if rule is None or len(el) or (el.text and el.text.strip()):
        return False
    allowed, required, check = rule
    names = set(el.attrib.keys())
    attrs = {str(k): str(v) for k, v in el.attrib.items()}
    return required <= names <= allowed and check(attrs)


def _fill_typed(detail: Any, el: etree._Element) -> None:
    a = el.attrib
    tag = el.tag
    if tag == "contact":
        detail.contact.callsign = a["callsign"]
        if "endpoint" in a:
            detail.contact.endpoint = a["endpoint"]
    elif tag == "__group":
        detail.group.name, detail.group.role = a["name"], a["role"]
    elif tag == "precisionlocation":
        detail.precisionLocation.geopointsrc = a["geopointsrc"]
        detail.precisionLocation.altsrc = a["altsrc"]
    elif tag == "status":
        detail.status.battery = int(a["battery"])
    elif tag == "takv":
        t = detail.takv
        t.device, t.platform, t.os, t.version = a["device"], a["platform"], a["os"], a["version"]
    elif tag == "track":
        detail.track.speed, detail.track.course = float(a["speed"]), float(a["course"])


def to_message(event: CotEvent) -> Any:
    """Build the ``TakMessage`` for an event."""
    msg = TakMessage()
    cot = msg.cotEvent
    cot.type, cot.uid, cot.how = event.type, event.uid, event.how or DEFAULT_HOW
    cot.access, cot.qos, cot.opex = event.access, event.qos, event.opex
    cot.sendTime, cot.startTime, cot.staleTime = event.time, event.start, event.stale
    p = event.point
    cot.lat, cot.lon, cot.hae, cot.ce, cot.le = p.lat, p.lon, p.hae, p.ce, p.le
    if event.detail.xml:
        root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
        rest: list[str] = []
        # Fix: with two elements of one typed tag, the first used to go to the typed field and
        # the second to xmlDetail, where it won on decode and the first was lost. An element
        # that occurs more than once now stays in xmlDetail, every copy of it.
        counts = Counter(child.tag for child in root)
        for child in root:
            tag = child.tag
            if isinstance(tag, str) and counts[tag] == 1 and _typed_fits(child):
                _fill_typed(cot.detail, child)
            else:
                rest.append(etree.tostring(child, encoding="unicode", with_tail=False))
        cot.detail.xmlDetail = "".join(rest)
    return msg


def encode_proto(event: CotEvent) -> bytes:
    """Serialise an event as a ``TakMessage`` payload (no framing)."""
    return bytes(to_message(event).SerializeToString())


def _typed_elements(detail: Any) -> list[etree._Element]:
    out: list[etree._Element] = []
    if detail.HasField("contact"):
        attrs = {"callsign": detail.contact.callsign}
        if detail.contact.endpoint:
            attrs = {"endpoint": detail.contact.endpoint, **attrs}
        out.append(etree.Element("contact", attrs))
    if detail.HasField("group"):
        out.append(etree.Element("__group", name=detail.group.name, role=detail.group.role))
    if detail.HasField("precisionLocation"):
        pl = detail.precisionLocation
        out.append(etree.Element("precisionlocation", geopointsrc=pl.geopointsrc, altsrc=pl.altsrc))
    if detail.HasField("status"):
        out.append(etree.Element("status", battery=str(detail.status.battery)))
    if detail.HasField("takv"):
        t = detail.takv
        out.append(
            etree.Element("takv", device=t.device, platform=t.platform, os=t.os, version=t.version)
        )
    if detail.HasField("track"):
        tr = detail.track
        out.append(
            etree.Element("track", speed=format_number(tr.speed), course=format_number(tr.course))
        )
    return out


def from_message(msg: Any, *, raw: bytes = b"", max_depth: int = MAX_DEPTH) -> CotEvent:
    """Build a :class:`CotEvent` from a ``TakMessage``."""
    if not msg.HasField("cotEvent"):
        raise MalformedEvent("TakMessage carries no cotEvent")
    cot = msg.cotEvent
    missing = [n for n in ("uid", "type") if not getattr(cot, n)]
    if missing:
        raise MalformedEvent(f"cotEvent lacks required field(s): {', '.join(missing)}")
    lat, lon = cot.lat, cot.lon
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise MalformedEvent(f"point out of range: lat={lat} lon={lon}")
    # Fix: these used to be accepted, and then the event could not be forwarded to an XML
    # client (encode_xml wrote hae="nan", which decode_xml and commo refuse; a time past year
    # 9999 made encode_xml raise ValueError). Refuse what the XML side cannot carry.
    if not all(math.isfinite(v) for v in (cot.hae, cot.ce, cot.le)):
        raise MalformedEvent("point hae/ce/le is not finite")
    if max(cot.sendTime, cot.startTime, cot.staleTime) > MAX_TIME_MS:
        raise MalformedEvent("event time is past year 9999")
    for name in ("uid", "type", "how", "access", "qos", "opex"):
        if _NOT_XML.search(getattr(cot, name)):
            raise MalformedEvent(f"cotEvent.{name} holds characters XML cannot carry")
    root = parse_fragment(f"<detail>{cot.detail.xmlDetail}</detail>")
    present = {child.tag for child in root}
    try:
        typed = _typed_elements(cot.detail)
    except ValueError as exc:  # lxml refuses strings XML cannot carry
        raise MalformedEvent(f"typed detail field cannot be XML: {exc}") from None
    for el in typed:
        if el.tag not in present:  # the xmlDetail copy wins (detail.proto)
            root.append(el)
    return CotEvent(
        uid=cot.uid,
        type=cot.type,
        how=cot.how,
        time=cot.sendTime,
        start=cot.startTime,
        stale=cot.staleTime,
        point=Point(lat, lon, cot.hae, cot.ce, cot.le),
        detail=inspect_detail(root, max_depth),
        access=cot.access,
        qos=cot.qos,
        opex=cot.opex,
        raw=raw,
        raw_format=WireFormat.PROTOBUF if raw else None,
    )


def decode_proto(payload: bytes, *, max_depth: int = MAX_DEPTH) -> CotEvent:
    """Decode one ``TakMessage`` payload (no framing) into an event."""
    msg = TakMessage()
    try:
        msg.ParseFromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise MalformedEvent(f"not a TakMessage: {exc}", Malformation.NOT_PROTOBUF) from None
    return from_message(msg, raw=payload, max_depth=max_depth)
