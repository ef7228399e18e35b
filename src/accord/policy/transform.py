"""The transforms a releasing rule applies, each a pure function of the event and its inputs.

Detail transforms work on the ``<detail>`` children with the hardened parser; children that
are kept are re-serialised by lxml exactly as the decoder serialised them, so they come out
byte-for-byte as they went in (attribute order and values untouched), except for the
attributes a transform rewrites.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Callable

from lxml import etree

from accord.cot.model import UNKNOWN_THRESHOLD, CotEvent, Detail, Point, iso_from_ms
from accord.cot.xml import format_number, inspect_detail, parse_fragment
from accord.policy.geo import Cell, grid_cell
from accord.policy.model import RELEASE_TAG, Transform

# 96 bits of HMAC: collisions among a partner's uids are negligible below ~10^12 uids, and the
# pseudonym stays short enough for ATAK's lists.
PSEUDONYM_HEX = 24
# A separation alert's machine detail and its pair detail (accord.geo.cot; policy sits beside
# geo in the layers, so the names are repeated here).
SEPARATION_TAG = "__separation"
CONFLICT_TAG = "__conflict"
INTENT_TAG = "__intent_conflict"  # two missions meet: a and b as in __separation
BREACH_TAG = "__breach"  # a geofence breach: track and fence uids, each with the partner


def pseudonym(uid: str, key: bytes, partner: str, prefix: str = "") -> str:
    """A stable per-partner pseudonym: HMAC-SHA256(key, partner NUL uid), hex, prefixed.

    The partner name is in the message, so one key shared by several partner policies still
    gives each partner different pseudonyms (they cannot join their views by uid).
    """
    digest = hmac.new(key, f"{partner}\0{uid}".encode(), hashlib.sha256).hexdigest()
    return prefix + digest[:PSEUDONYM_HEX]


def _known(value: float) -> bool:
    return value < UNKNOWN_THRESHOLD


def coarsen(point: Point, grid_m: float, altitude_m: float, cell: Cell | None = None) -> Point:
    """Snap to the centre of the grid cell; ce at least the cell's centre-to-corner distance.

    hae is rounded to a multiple of ``altitude_m`` and le raised to at least half of it (the
    largest error rounding adds). Unknown values (9999999) stay unknown. ``cell``: the point's
    cell of that grid, when the caller has it already.
    """
    lat, lon, ce, hae, le = point.lat, point.lon, point.ce, point.hae, point.le
    if grid_m > 0:
        if cell is None:
            cell = grid_cell(lat, lon, grid_m)
        lat, lon = cell.lat, cell.lon
        ce = max(ce, math.ceil(cell.radius_m)) if _known(ce) else ce
    if altitude_m > 0 and _known(hae):
        hae = round(hae / altitude_m) * altitude_m
        le = max(le, altitude_m / 2) if _known(le) else le
    return Point(lat, lon, hae, ce, le)


def coarsen_text(text: str, grid_m: float, altitude_m: float) -> str | None:
    """A ``lat,lon[,hae]`` attribute (route ``link point``) coarsened, or None if unreadable."""
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    if len(values) not in (2, 3) or not all(math.isfinite(v) for v in values):
        return None
    if not (-90 <= values[0] <= 90 and -180 <= values[1] <= 180):
        return None
    hae = values[2] if len(values) == 3 else 0.0
    out = coarsen(Point(values[0], values[1], hae, 0.0, 0.0), grid_m, altitude_m)
    fields = [out.lat, out.lon] + ([out.hae] if len(values) == 3 else [])
    return ",".join(format_number(v) for v in fields)


def rewrite_detail(
    event: CotEvent,
    transform: Transform,
    rename: Callable[[str], str] | None,
    link_released: Callable[[etree._Element], bool],
    marking: dict[str, str],
) -> tuple[Detail, tuple[str, ...]]:
    """Strip/keep detail children, pseudonymise and prune links, coarsen link points, mark.

    Returns the event's new detail and the names of what was done, for explanations.
    """
    fast = _rewrite_plain(event.detail, transform, marking)
    if fast is not None:
        return fast
    done: list[str] = []
    root = parse_fragment(f"<detail>{event.detail.xml}</detail>")
    for child in list(root):
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if transform.stripped(tag):
            root.remove(child)
            if tag != RELEASE_TAG:
                done.append(f"strip <{tag}>")
            continue
        if tag in (SEPARATION_TAG, INTENT_TAG) and rename is not None:
            _rename_separation(root, child, rename, marking.get("partner", ""))
            done.append(f"pseudonymise <{tag}> uids")
            continue
        if tag == BREACH_TAG and rename is not None:
            receiver = marking.get("partner", "").casefold()
            for name in ("track", "fence"):
                value = child.get(name)
                theirs = receiver and child.get(f"{name}_partner", "").casefold() == receiver
                if value and not theirs:
                    child.set(name, rename(value))
            done.append(f"pseudonymise <{BREACH_TAG}> uids")
            continue
        if tag == "fileshare" and rename is not None and child.get("senderUid"):
            # A file offer names its sender's device: the same pseudonym as its SA.
            child.set("senderUid", rename(child.get("senderUid", "")))
            done.append("pseudonymise fileshare senderUid")
            continue
        if tag == "link":
            if not link_released(child):
                root.remove(child)
                done.append(f"drop <link uid={child.get('uid', '')!r}> (target not released)")
                continue
            target = child.get("uid")
            if rename is not None and target:
                child.set("uid", rename(target))
            point = child.get("point")
            if point is not None and (transform.grid_m > 0 or transform.altitude_m > 0):
                coarse = coarsen_text(point, transform.grid_m, transform.altitude_m)
                if coarse is None:
                    child.attrib.pop("point")
                else:
                    child.set("point", coarse)
    if rename is not None and root.find("link") is not None:
        done.append("pseudonymise link uids")
    mark = etree.SubElement(root, RELEASE_TAG)
    for name, value in marking.items():
        mark.set(name, value)
    done.append(f"mark <{RELEASE_TAG}>")
    # The detail was depth-checked when it was decoded; a rewrite only removes and adds a leaf.
    return inspect_detail(root, None), tuple(done)


# A detail with a child a rewrite changes, or one routing reads (cot.xml inspects it) to strip,
# takes the parsing path.
_REWRITTEN = frozenset({"link", "fileshare", SEPARATION_TAG, INTENT_TAG, BREACH_TAG})
_INSPECTED = frozenset({"contact", "marti", "__chat", "TakControl"})
_ATTR_UNSAFE = re.compile(r'[&<>"\n\r\t]')


def _rewrite_plain(
    detail: Detail, transform: Transform, marking: dict[str, str]
) -> tuple[Detail, tuple[str, ...]] | None:
    """:func:`rewrite_detail` without parsing, for the common detail (an SA): only children to
    keep or strip whole, none of them one that routing reads. The decoder already parsed the
    detail and serialised its children (cot.xml), so they are cut out of that text; None when
    the text is not in that plain shape and the parsing path must decide."""
    if _ATTR_UNSAFE.search("".join(marking.values())):
        return None
    return plain_release(detail, transform, release_element(marking))


def release_element(marking: dict[str, str]) -> str:
    """The ``<__release>`` element of ``marking`` as the plain path writes it (values that
    need no escaping: :func:`marking_plain` says whether they do)."""
    attrs = "".join(f' {name}="{value}"' for name, value in marking.items())
    return f"<{RELEASE_TAG}{attrs}/>"


def marking_plain(marking: dict[str, str]) -> bool:
    """Whether the marking's values can be written without escaping (the plain path)."""
    return _ATTR_UNSAFE.search("".join(marking.values())) is None


def plain_release(
    detail: Detail, transform: Transform, mark: str
) -> tuple[Detail, tuple[str, ...]] | None:
    """The detail as released: its kept children (cut once per detail text, see
    :func:`plain_cut`) and ``mark`` (the ``<__release>`` element's text) after them; None
    when the detail takes the parsing path."""
    cut = plain_cut(detail.xml, transform)
    if cut is None:
        return None
    kept, done = cut
    d = detail  # built directly: dataclasses.replace costs more than the rest of the cut
    out = Detail(kept + mark, d.contact, d.dests, d.has_marti, d.chat, d.takcontrol)
    return out, done


# The plain cut by (transform, detail text): a client repeats its detail from report to report
# (an SA's point and times change, rarely its detail), so the scan is done once per text.
# Bounded (cleared when full); long details are not kept.
# Keyed by the transform's id (hashing the Transform cost more than the lookup), which the
# transform's entry in _CUT_TRANSFORMS keeps from being reused while the cuts are cached.
_CUTS: dict[tuple[int, str], tuple[str, tuple[str, ...]] | None] = {}
_CUT_TRANSFORMS: dict[int, Transform] = {}
CUT_ENTRIES = 4096
CUT_MAX_CHARS = 4096
_MARK_DONE = f"mark <{RELEASE_TAG}>"


def plain_cut(xml: str, transform: Transform) -> tuple[str, tuple[str, ...]] | None:
    """The kept children's text of a plain detail and what was done (ending with the marking),
    or None when the detail must be parsed (see :func:`split_children`)."""
    key = (id(transform), xml)
    if _CUT_TRANSFORMS.get(key[0]) is transform:
        try:
            return _CUTS[key]
        except KeyError:
            pass
    cut = _cut(xml, transform)
    if len(xml) <= CUT_MAX_CHARS:
        if len(_CUTS) >= CUT_ENTRIES or (
            key[0] not in _CUT_TRANSFORMS and len(_CUT_TRANSFORMS) >= CUT_ENTRIES
        ):
            _CUTS.clear()
            _CUT_TRANSFORMS.clear()
        if _CUT_TRANSFORMS.setdefault(key[0], transform) is not transform:
            # An id reused by a new transform: what was cut for the old one is not its.
            _CUTS.clear()
            _CUT_TRANSFORMS.clear()
            _CUT_TRANSFORMS[key[0]] = transform
        _CUTS[key] = cut
    return cut


def _cut(xml: str, transform: Transform) -> tuple[str, tuple[str, ...]] | None:
    children = split_children(xml)
    if children is None:
        return None
    kept: list[str] = []
    done: list[str] = []
    for tag, text in children:
        if tag in _REWRITTEN or (tag in _INSPECTED and transform.stripped(tag)):
            return None
        if transform.stripped(tag):
            if tag != RELEASE_TAG:
                done.append(f"strip <{tag}>")
            continue
        kept.append(text)
    done.append(_MARK_DONE)
    return "".join(kept), tuple(done)


def split_children(xml: str) -> list[tuple[str, str]] | None:
    """``(tag, text)`` of each top-level element of a detail's serialised children, or None
    unless the text is plain elements (no comments, CDATA, processing instructions,
    namespaces, apostrophes in tags or text between the children)."""
    out: list[tuple[str, str]] = []
    depth = 0
    start = 0
    tag = ""
    i = 0
    n = len(xml)
    while i < n:
        if depth == 0 and xml[i] != "<":
            return None  # text between children
        lt = xml.find("<", i)
        if lt < 0:
            return None if depth else out
        gt = xml.find(">", lt)
        if gt < 0:
            return None
        while xml.count('"', lt, gt) % 2:  # a ">" inside a quoted value
            gt = xml.find(">", gt + 1)
            if gt < 0:
                return None
        inner = xml[lt + 1 : gt]
        if not inner or inner[0] in "!?" or "'" in inner or "xmlns" in inner:
            return None
        if ":" in inner.split(None, 1)[0]:
            return None  # a prefixed (namespaced) tag
        if inner[0] == "/":
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                out.append((tag, xml[start : gt + 1]))
        else:
            name = inner.split(None, 1)[0].rstrip("/")
            if depth == 0:
                start, tag = lt, name
            if inner[-1] == "/":
                if depth == 0:
                    out.append((tag, xml[start : gt + 1]))
            else:
                depth += 1
        i = gt + 1
    return out if depth == 0 else None


def _rename_separation(
    root: etree._Element, child: etree._Element, rename: Callable[[str], str], partner: str
) -> None:
    """A separation alert names two tracks: ``a`` is always ours (renamed like every uid);
    ``b`` keeps its name when the receiver itself released it (``<__conflict partner>`` is
    that partner: the policy's ``partner`` names it as its partner entry does, case aside),
    since it is then already the name the receiver gave it."""
    conflict = root.find(CONFLICT_TAG)
    named = "" if conflict is None else conflict.get("partner", "")
    theirs = partner != "" and named.casefold() == partner.casefold()
    for name in ("a", "b"):
        value = child.get(name)
        if value and not (name == "b" and theirs):
            child.set(name, rename(value))


def marking(policy_name: str, rule: str, partner: str, version: str, now_ms: int) -> dict[str, str]:
    """The attributes of ``<__release>`` (documented in docs/policy.md)."""
    return {
        "policy": policy_name,
        "rule": rule,
        "partner": partner,
        "version": version,
        "time": iso_from_ms(now_ms),
    }
