"""CoT XML: a hardened decoder and an encoder.

The decoder never loads a DTD, never expands an entity and never touches the network: any
document type or entity declaration is refused before libxml2 sees the bytes, and the parser is
configured so that nothing could be resolved even if it were. Depth and size are bounded.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from lxml import etree

from accord.cot.errors import Malformation, MalformedEvent
from accord.cot.model import (
    EMPTY_DETAIL,
    MAX_TIME_MS,
    MIN_TIME_MS,
    UNKNOWN_VALUE,
    Chat,
    Contact,
    CotEvent,
    Dest,
    Detail,
    Point,
    TakControl,
    WireFormat,
    iso_from_ms,
    ms_from_iso,
)

# TAK Server caps one message at 8 MiB (reference tak-protocol §2.2).
MAX_EVENT_BYTES = 8 * 1024 * 1024
# Deepest ATAK detail seen (shapes, routes, sensor video entries) is ~5 levels; 32 is ample and
# keeps a hostile nesting from costing anything (libxml2's own ceiling is 256).
MAX_DEPTH = 32

# A declaration of any kind (<!DOCTYPE, <!ENTITY, <!ELEMENT...) is refused outright: CoT never
# needs one, and refusing it is the only way to be sure no entity is ever expanded.
_DECLARATION = re.compile(rb"<!(?!--|\[CDATA\[)")
_EVENT_START = re.compile(rb"<event[\s>/]")
_AUTH = re.compile(rb"<auth[\s>/]")
# What may precede <event> in a frame: whitespace and at most one XML declaration. Anything
# else (a <!DOCTYPE> with an external DTD, garbage after the declaration) is refused, not
# silently dropped.
_PROLOG = re.compile(rb"\s*(?:<\?xml\s[^>]*\?>\s*)?")
# CoT is UTF-8 (or its ASCII subset). Another encoding (UTF-16 above all) would hide a
# <!DOCTYPE from the byte check above, so a byte-order mark, a NUL byte or a declared
# encoding other than these is refused before libxml2 sees the bytes.
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_DECLARED_ENCODING = re.compile(rb"\s*<\?xml\s[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")
_ALLOWED_ENCODINGS = frozenset({b"utf-8", b"utf8", b"ascii", b"us-ascii"})

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
)

DEFAULT_HOW = "h-g-i-g-o"
_REQUIRED = ("uid", "type", "time", "start", "stale")
# What routing reads from <detail>: only top-level children with these tags are inspected.
_INSPECTED = frozenset({"contact", "marti", "__chat", "TakControl"})


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """The ``<auth><cot username password uid/></auth>`` document ATAK may send first."""

    username: str
    password: str
    uid: str


def parse_fragment(data: bytes | str) -> etree._Element:
    """Parse one XML element with the hardened parser; :class:`MalformedEvent` on any problem."""
    raw = data.encode() if isinstance(data, str) else data
    _check_encoding(raw)
    if b"<!" in raw and _DECLARATION.search(raw):
        raise MalformedEvent(
            "XML declarations (DOCTYPE/ENTITY) are not allowed in CoT",
            Malformation.FORBIDDEN_XML,
        )
    try:
        root = etree.fromstring(raw, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise MalformedEvent(f"not well-formed XML: {exc}", Malformation.NOT_WELL_FORMED) from None
    return root


def _check_bytes(raw: bytes) -> None:
    if raw.startswith(_BOMS) or b"\x00" in raw:
        raise MalformedEvent(
            "CoT XML must be UTF-8: a byte-order mark or NUL byte is not allowed",
            Malformation.FORBIDDEN_XML,
        )


def _check_encoding(raw: bytes) -> None:
    """Refuse what is not UTF-8. (A frame's prefix is not parsed, so WinTAK's
    ``encoding="utf-16"`` in front of UTF-8 bytes never reaches this.)"""
    _check_bytes(raw)
    declared = _DECLARED_ENCODING.match(raw)
    if declared is not None and declared.group(1).lower() not in _ALLOWED_ENCODINGS:
        raise MalformedEvent(
            f"CoT XML must be UTF-8, not {declared.group(1)[:32].decode('latin-1')!r}",
            Malformation.FORBIDDEN_XML,
        )


def split_prefix(frame: bytes) -> tuple[bytes, bytes]:
    """Cut a stream chunk into what precedes ``<event`` (declaration, ``<auth>``) and the event."""
    match = _EVENT_START.search(frame)
    if match is None:
        raise MalformedEvent("no <event> element in frame")
    return frame[: match.start()], frame[match.start() :]


def decode_auth(prefix: bytes) -> AuthRequest | None:
    """Read an ``<auth>`` document from the bytes before an event, if there is one."""
    match = _AUTH.search(prefix)
    if match is None:
        return None
    end = prefix.find(b"</auth>", match.start())
    if end < 0:
        raise MalformedEvent("unterminated <auth> element")
    root = parse_fragment(prefix[match.start() : end + len(b"</auth>")])
    cot = root.find("cot")
    if cot is None:
        raise MalformedEvent("<auth> without <cot>")
    return AuthRequest(cot.get("username", ""), cot.get("password", ""), cot.get("uid", ""))


def decode_xml(frame: bytes, *, max_depth: int = MAX_DEPTH) -> CotEvent:
    """Decode one ``<event>`` (optionally preceded by a declaration) into a :class:`CotEvent`.

    The event keeps its exact bytes in ``raw``, so that it can be forwarded as received.
    """
    _check_bytes(frame)  # before looking for <event>: UTF-16 would hide it
    prefix, body = split_prefix(frame)
    # Fix: this used to accept any prefix starting with "<?xml", so a DOCTYPE (external DTD,
    # entity declarations) or garbage after the declaration was silently dropped; refuse it.
    if prefix and not _PROLOG.fullmatch(prefix):
        declared = _DECLARATION.search(prefix) is not None
        raise MalformedEvent(
            "unexpected bytes before <event>",
            Malformation.FORBIDDEN_XML if declared else Malformation.NOT_WELL_FORMED,
        )
    body = body.rstrip()
    root = parse_fragment(body)
    if root.tag != "event":
        raise MalformedEvent(f"root element is <{root.tag}>, not <event>")
    return from_element(root, raw=body, max_depth=max_depth)


def from_element(root: etree._Element, *, raw: bytes = b"", max_depth: int = MAX_DEPTH) -> CotEvent:
    """Build a :class:`CotEvent` from a parsed ``<event>`` element."""
    get = root.get
    uid, cot_type, time, start, stale = (
        get("uid"),
        get("type"),
        get("time"),
        get("start"),
        get("stale"),
    )
    if not (uid and cot_type and time and start and stale):
        missing = [name for name in _REQUIRED if not get(name)]
        raise MalformedEvent(f"event lacks required attribute(s): {', '.join(missing)}")
    try:
        times = (ms_from_iso(str(time)), ms_from_iso(str(start)), ms_from_iso(str(stale)))
    except (ValueError, OverflowError) as exc:
        raise MalformedEvent(f"bad event time: {exc}") from None
    # Fix: a time before 1970 used to be accepted here and then made encode_proto raise
    # ValueError (uint64 field) when the event was forwarded to a protobuf client.
    if not all(MIN_TIME_MS <= t <= MAX_TIME_MS for t in times):
        raise MalformedEvent("event time before 1970 cannot be carried in TAK protocol v1")
    # The first <point> and <detail> children (what find() returns), in one pass: ElementPath
    # cost more than the rest of reading the event's attributes.
    point_el = detail_el = None
    for child in root:
        tag = child.tag
        if tag == "point":
            if point_el is None:
                point_el = child
        elif tag == "detail" and detail_el is None:
            detail_el = child
    if point_el is None:
        raise MalformedEvent("event has no <point>")
    point, complete = _decode_point(point_el)
    how = str(get("how", ""))
    # commo throws away an event that lacks `how` or any point attribute (§1.1): such an event
    # is not forwarded as received but encoded afresh, with the gaps filled.
    if not how or not complete:
        raw = b""
    detail = EMPTY_DETAIL if detail_el is None else inspect_detail(detail_el, max_depth)
    return CotEvent(
        uid=str(uid),
        type=str(cot_type),
        how=how,
        time=times[0],
        start=times[1],
        stale=times[2],
        point=point,
        detail=detail,
        access=str(get("access", "")),
        qos=str(get("qos", "")),
        opex=str(get("opex", "")),
        caveat=str(get("caveat", "")),
        releasable_to=str(get("releasableTo", "")),
        raw=raw,
        raw_format=WireFormat.XML if raw else None,
    )


_POINT_ATTRS = ("lat", "lon", "hae", "ce", "le")


def _decode_point(el: etree._Element) -> tuple[Point, bool]:
    """The point, and whether it had every attribute (a gap is filled with UNKNOWN_VALUE)."""
    get = el.get
    try:  # the common point: five finite numbers, in range
        lat, lon = float(get("lat")), float(get("lon"))  # type: ignore[arg-type]
        hae, ce, le = float(get("hae")), float(get("ce")), float(get("le"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass  # a gap or a bad value: read one by one below, which names the problem
    else:
        if (
            -90.0 <= lat <= 90.0
            and -180.0 <= lon <= 180.0
            and math.isfinite(hae)
            and math.isfinite(ce)
            and math.isfinite(le)
        ):
            return Point(lat, lon, hae, ce, le), True
    values: list[float] = []
    complete = True
    for name in _POINT_ATTRS:
        text = get(name)
        if text is None or not text.strip():
            if name in ("lat", "lon"):
                raise MalformedEvent(f"<point> lacks {name}")
            values.append(UNKNOWN_VALUE)
            complete = complete and bool(text)  # blank but present: still as received
            continue
        try:
            value = float(text)
        except ValueError:
            raise MalformedEvent(f"<point {name}={text!r}> is not a number") from None
        if not math.isfinite(value):
            raise MalformedEvent(f"<point {name}={text!r}> is not finite")
        values.append(value)
    lat, lon = values[0], values[1]
    if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 180.0:
        raise MalformedEvent(f"point out of range: lat={lat} lon={lon}")
    return Point(lat, lon, values[2], values[3], values[4]), complete


def inspect_detail(detail: etree._Element, max_depth: int | None = MAX_DEPTH) -> Detail:
    """Serialise the children of ``<detail>`` and read the facts routing needs from them;
    ``max_depth`` None: no depth check (a rewrite of a detail this server already checked)."""
    return detail_with_text(detail, _children_xml(detail), max_depth)


def detail_with_text(detail: etree._Element, xml: str, max_depth: int | None = MAX_DEPTH) -> Detail:
    """:func:`inspect_detail` with the children's text already known: ``xml`` must be what
    they serialise as (a caller that has it need not serialise them again)."""
    # Every element below <detail> opens with a "<" in that text (comments and processing
    # instructions are removed by the parser), so a detail with fewer "<" than the limit
    # cannot nest deeper than it: the common small detail needs no walk.
    if max_depth is not None and xml.count("<") + 1 > max_depth:
        _check_depth(detail, max_depth)
    contact: Contact | None = None
    dests: list[Dest] = []
    has_marti = False
    chat: Chat | None = None
    takcontrol: TakControl | None = None
    for child in detail:
        tag = child.tag
        if tag not in _INSPECTED:  # (a comment's or entity's tag is no str: never in it)
            continue
        if tag == "contact" and contact is None:
            contact = Contact(child.get("callsign", ""), child.get("endpoint", ""))
        elif tag == "marti":
            has_marti = True
            for dest in child.iterchildren("dest"):
                for kind in ("callsign", "uid", "group", "mission", "mission-guid"):
                    value = dest.get(kind)
                    if value:
                        dests.append(Dest(kind, value))
        elif tag == "__chat" and chat is None:
            chat = _decode_chat(child)
        elif tag == "TakControl":
            takcontrol = _decode_takcontrol(child)
    return Detail(xml, contact, tuple(dests), has_marti, chat, takcontrol)


def _children_xml(detail: etree._Element) -> str:
    """The children of ``<detail>`` serialised one after the other, without their tails."""
    if len(detail) and detail.tag == "detail" and detail.text is None and not detail.attrib:
        for child in detail:
            if child.tail is not None:
                break
        else:
            if not detail.nsmap:
                # The same text, in one call instead of one per child (~3x faster on an SA).
                whole = etree.tostring(detail, encoding="unicode")
                return whole[len("<detail>") : -len("</detail>")]
    return "".join(etree.tostring(child, encoding="unicode", with_tail=False) for child in detail)


def _check_depth(root: etree._Element, max_depth: int) -> None:
    # Depth cannot exceed the element count: the common small detail needs no walk at all.
    for count, _ in enumerate(root.iter(), start=1):
        if count > max_depth:
            break
    else:
        return
    # Iterative walk: a recursive one would let the peer choose our stack depth.
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        el, depth = stack.pop()
        if depth > max_depth:
            raise MalformedEvent(
                f"<detail> nests deeper than {max_depth} levels", Malformation.TOO_DEEP
            )
        stack.extend((child, depth + 1) for child in el)


def _decode_chat(el: etree._Element) -> Chat:
    members: list[str] = []
    group = el.find("chatgrp")
    if group is not None:
        # uid0 is the sender, uid1..n the recipients (reference tak-protocol §1.3).
        index = 1
        while (uid := group.get(f"uid{index}")) is not None:
            members.append(uid)
            index += 1
    return Chat(el.get("chatroom", ""), el.get("id", ""), tuple(members))


def _decode_takcontrol(el: etree._Element) -> TakControl:
    supported: list[int] = []
    requested: int | None = None
    accepted: bool | None = None
    for child in el:
        try:
            if child.tag == "TakProtocolSupport":
                supported.append(int(child.get("version", "")))
            elif child.tag == "TakRequest":
                requested = int(child.get("version", ""))
            elif child.tag == "TakResponse":
                accepted = child.get("status", "").strip().lower() == "true"
        except ValueError:
            raise MalformedEvent("TakControl version is not a number") from None
    return TakControl(tuple(supported), requested, accepted)


_NEEDS_ESCAPE = re.compile(r'[&<>"\n\r\t]')


def escape_attr(value: str) -> str:
    """Escape text for a double-quoted XML attribute."""
    if _NEEDS_ESCAPE.search(value) is None:  # most values: one scan, no copies
        return value
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float (integers keep one decimal)."""
    return repr(float(value))


def encode_xml(event: CotEvent) -> bytes:
    """Serialise an event as one ``<event>`` element: no declaration, nothing after it."""
    parts = [
        '<event version="2.0" uid="',
        escape_attr(event.uid),
        '" type="',
        escape_attr(event.type),
        '" how="',
        # commo drops an event without `how` (§1.1); a neutral one keeps it usable.
        escape_attr(event.how or DEFAULT_HOW),
        '" time="',
        iso_from_ms(event.time),
        '" start="',
        iso_from_ms(event.start),
        '" stale="',
        iso_from_ms(event.stale),
        '"',
    ]
    for name, value in (
        ("access", event.access),
        ("qos", event.qos),
        ("opex", event.opex),
        ("caveat", event.caveat),
        ("releasableTo", event.releasable_to),
    ):
        if value:
            parts += [" ", name, '="', escape_attr(value), '"']
    p = event.point
    parts += [
        '><point lat="',
        format_number(p.lat),
        '" lon="',
        format_number(p.lon),
        '" hae="',
        format_number(p.hae),
        '" ce="',
        format_number(p.ce),
        '" le="',
        format_number(p.le),
        '"/>',
    ]
    parts += (
        ["<detail>", event.detail.xml, "</detail></event>"]
        if event.detail.xml
        else ["<detail/></event>"]
    )
    return "".join(parts).encode()


def detail_from_xml(xml: str, max_depth: int = MAX_DEPTH) -> Detail:
    """Build a :class:`Detail` from the text of ``<detail>``'s children."""
    if not xml:
        return EMPTY_DETAIL
    return inspect_detail(parse_fragment(f"<detail>{xml}</detail>"), max_depth)


def without_marti(event: CotEvent) -> CotEvent:
    """The event with ``<marti>`` removed, as a server forwards directed traffic (§1.3)."""
    if not event.detail.has_marti:
        return event
    root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
    for marti in root.findall("marti"):
        root.remove(marti)
    detail = inspect_detail(root)
    return replace(event, detail=detail, raw=b"", raw_format=None)
