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
from collections.abc import Callable

from lxml import etree

from accord.cot.model import UNKNOWN_THRESHOLD, CotEvent, Detail, Point, iso_from_ms
from accord.cot.xml import format_number, inspect_detail, parse_fragment
from accord.policy.geo import grid_cell
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


def coarsen(point: Point, grid_m: float, altitude_m: float) -> Point:
    """Snap to the centre of the grid cell; ce at least the cell's centre-to-corner distance.

    hae is rounded to a multiple of ``altitude_m`` and le raised to at least half of it (the
    largest error rounding adds). Unknown values (9999999) stay unknown.
    """
    lat, lon, ce, hae, le = point.lat, point.lon, point.ce, point.hae, point.le
    if grid_m > 0:
        cell = grid_cell(lat, lon, grid_m)
        lat, lon = cell.lat, cell.lon
        ce = max(ce, math.ceil(cell.radius_m)) if _known(ce) else ce
    if altitude_m > 0 and _known(hae):
        hae = round(hae / altitude_m) * altitude_m
        le = max(le, altitude_m / 2) if _known(le) else le
    return Point(lat=lat, lon=lon, hae=hae, ce=ce, le=le)


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
