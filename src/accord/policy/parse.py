"""TOML → :class:`~accord.policy.model.Policy`, with every problem named by line, key and why.

Where each problem is (a scan of the source) and how values are read while the problems are
collected: :mod:`accord.policy.lines`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable
from typing import Any

from accord.cot.model import ms_from_iso
from accord.policy.lines import Issue, Lines, PolicyError, Reader
from accord.policy.model import (
    DEFAULT_STRIP,
    GEOMETRY_TAGS,
    MISSION_PARTS,
    Area,
    Circle,
    MissionShare,
    Policy,
    Polygon,
    Rule,
    Shape,
    Transform,
    Withheld,
)

ACTIONS = ("release", "withhold")
_TOP_KEYS = frozenset(
    {
        "name",
        "partner",
        "pseudonymise",
        "pseudonym_prefix",
        "secret",
        "valid_from",
        "valid_until",
        "area",
        "always_withhold",
        "rule",
        "mission",
    }
)
_MISSION_KEYS = frozenset({"name", "missions", "keywords", "share", "accept"})
_MISSION_ACCEPTS = ("logs",)  # what a partner's mirror may send back into our mission
_RULE_KEYS = frozenset(
    {
        "name",
        "types",
        "areas",
        "not_areas",
        "max_age_s",
        "action",
        "keep",
        "strip",
        "allow",
        "grid_m",
        "altitude_m",
        "delay_s",
        "min_interval_s",
    }
)
_WITHHOLD_KEYS = frozenset({"types", "areas"})
_AREA_KEYS = frozenset({"polygon", "circle"})
_CIRCLE_KEYS = frozenset({"lat", "lon", "radius_m"})
_TAG = re.compile(r"[A-Za-z_][\w.\-]*")
_TYPE_GLOB = re.compile(r"[A-Za-z0-9*?\-\[\]!]+")
# A grid finer than this is no coarsening at all; coarser than a quarter of the Earth is a
# typo (the unit is metres).
MIN_GRID_M = 1.0
MAX_GRID_M = 10_000_000.0


def decode_policy(text: str | bytes) -> Policy:
    """Read a policy; raise :class:`PolicyError` listing every problem."""
    raw = text.encode() if isinstance(text, str) else text
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError([Issue(1, "(file)", f"not UTF-8 text: {exc.reason}")]) from None
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise PolicyError(
            [Issue(int(found.group(1)) if found else 1, "(syntax)", message)]
        ) from None
    reader = Reader(Lines.scan(source))
    policy = _policy(data, reader, "sha256:" + hashlib.sha256(raw).hexdigest()[:16])
    if reader.issues or policy is None:
        raise PolicyError(sorted(reader.issues, key=lambda i: i.line))
    return policy


def _policy(data: dict[str, Any], r: Reader, version: str) -> Policy | None:
    lines = r.lines
    r.unknown(data, _TOP_KEYS, ("", 0), "")
    name = r.string(data.get("name"), lines.key("", 0, "name"), "name")
    partner = r.string(data.get("partner"), lines.key("", 0, "partner"), "partner")
    pseudonymise = data.get("pseudonymise", False)
    if not isinstance(pseudonymise, bool):
        r.fail(lines.key("", 0, "pseudonymise"), "pseudonymise", "must be true or false")
        pseudonymise = False
    prefix = data.get("pseudonym_prefix", "")
    if not isinstance(prefix, str):
        r.fail(lines.key("", 0, "pseudonym_prefix"), "pseudonym_prefix", "must be a string")
        prefix = ""
    secret: bytes | None = None
    if "secret" in data:
        text = r.string(data["secret"], lines.key("", 0, "secret"), "secret")
        if text is not None and len(text) < 16:
            r.fail(
                lines.key("", 0, "secret"),
                "secret",
                "too short to key an HMAC: use at least 16 characters (32 random bytes hex)",
            )
        secret = text.encode() if text else None
    valid = [_time(data, key, r) for key in ("valid_from", "valid_until")]
    if valid[0] is not None and valid[1] is not None and valid[0] >= valid[1]:
        r.fail(lines.key("", 0, "valid_until"), "valid_until", "must be later than valid_from")
    areas = _areas(data.get("area", {}), r)
    withheld = _withheld(data.get("always_withhold", {}), areas, r)
    rules = _rules(data.get("rule", []), areas, r)
    missions = _missions(data.get("mission", []), r)
    if name is None or partner is None:
        return None
    return Policy(
        name=name,
        partner=partner,
        version=version,
        rules=rules,
        areas=areas,
        always_withhold=withheld,
        pseudonymise=pseudonymise,
        pseudonym_prefix=prefix,
        secret=secret,
        valid_from_ms=valid[0],
        valid_until_ms=valid[1],
        missions=missions,
    )


def _time(data: dict[str, Any], key: str, r: Reader) -> int | None:
    if key not in data:
        return None
    value = data[key]
    line = r.lines.key("", 0, key)
    if hasattr(value, "isoformat") and not isinstance(value, str):
        value = value.isoformat()
    if not isinstance(value, str):
        r.fail(line, key, "must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z")
        return None
    try:
        return ms_from_iso(value.replace("Z", "+00:00"))
    except ValueError:
        r.fail(line, key, f"{value!r} is not an ISO 8601 time, e.g. 2026-01-01T00:00:00Z")
        return None


def _areas(table: object, r: Reader) -> dict[str, Area]:
    if not isinstance(table, dict):
        r.fail(r.lines.key("", 0, "area"), "area", "must be a table of named areas: [area.NAME]")
        return {}
    areas: dict[str, Area] = {}
    for name, body in table.items():
        where = (f"area.{name}", 0)
        line = r.lines.section(*where)
        label = f"area.{name}"
        if not isinstance(body, dict):
            r.fail(line, label, "must be a table with polygon = [...] or circle = {...}")
            continue
        r.unknown(body, _AREA_KEYS, where, label + ".")
        kinds = [k for k in ("polygon", "circle") if k in body]
        if len(kinds) != 1:
            r.fail(line, label, "needs exactly one of polygon or circle")
            continue
        kind = kinds[0]
        shape = (_polygon if kind == "polygon" else _circle)(
            body[kind], r.lines.key(*where, kind), f"{label}.{kind}", r
        )
        if shape is not None:
            areas[name] = Area(name, shape)
    return areas


def _latlon(value: object) -> tuple[float, float] | None:
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and -90.0 <= value[0] <= 90.0
        and -180.0 <= value[1] <= 180.0
    ):
        return float(value[0]), float(value[1])
    return None


def _polygon(value: object, line: int, key: str, r: Reader) -> Shape | None:
    if not isinstance(value, list) or len(value) < 3:
        r.fail(line, key, "needs at least 3 vertices: [[lat, lon], [lat, lon], [lat, lon]]")
        return None
    vertices = []
    for number, vertex in enumerate(value, start=1):
        point = _latlon(vertex)
        if point is None:
            r.fail(
                line,
                key,
                f"vertex {number} must be [lat, lon] in degrees (lat -90..90, lon -180..180)",
            )
            return None
        vertices.append(point)
    if vertices[0] == vertices[-1]:
        vertices.pop()  # a closed ring written out in full
    if len(set(vertices)) < 3:
        r.fail(line, key, "needs at least 3 distinct vertices")
        return None
    return Polygon(tuple(vertices))


def _circle(value: object, line: int, key: str, r: Reader) -> Shape | None:
    if not isinstance(value, dict) or set(value) != _CIRCLE_KEYS:
        r.fail(line, key, "must be { lat = DEG, lon = DEG, radius_m = METRES }")
        return None
    lat = r.number(value["lat"], line, key + ".lat", low=-90, high=90, unit="degrees")
    lon = r.number(value["lon"], line, key + ".lon", low=-180, high=180, unit="degrees")
    radius = r.number(value["radius_m"], line, key + ".radius_m", low=0, unit="metres")
    if lat is None or lon is None or radius is None:
        return None
    return Circle(lat, lon, radius)


def _area_refs(
    value: object, line: int, key: str, areas: dict[str, Area], r: Reader, declared: Iterable[str]
) -> tuple[str, ...]:
    names = r.strings(value, line, key)
    if names is None:
        return ()
    known = set(declared)
    for name in names:
        if name not in known:
            r.fail(line, key, f"no area named {name!r} (declare it as [area.{name}])")
    return tuple(n for n in names if n in areas)


def _globs(value: object, line: int, key: str, r: Reader) -> tuple[str, ...]:
    globs = r.strings(value, line, key)
    if globs is None:
        return ()
    for glob in globs:
        if not _TYPE_GLOB.fullmatch(glob):
            r.fail(line, key, f"{glob!r} is not a CoT type glob (letters, digits, -, *, ?)")
    return globs


def _withheld(table: object, areas: dict[str, Area], r: Reader) -> Withheld:
    line = r.lines.section("always_withhold")
    if not isinstance(table, dict):
        r.fail(line, "always_withhold", "must be a table: [always_withhold]")
        return Withheld()
    r.unknown(table, _WITHHOLD_KEYS, ("always_withhold", 0), "always_withhold.")
    declared = _declared(r)
    types = _globs(
        table.get("types", []),
        r.lines.key("always_withhold", 0, "types"),
        "always_withhold.types",
        r,
    )
    refs = _area_refs(
        table.get("areas", []),
        r.lines.key("always_withhold", 0, "areas"),
        "always_withhold.areas",
        areas,
        r,
        declared,
    )
    return Withheld(types, refs)


def _declared(r: Reader) -> set[str]:
    # Areas that failed to parse are still declared: refer to them without a second error.
    return {s[len("area.") :] for s, _ in r.lines.sections if s.startswith("area.")}


def _rules(value: object, areas: dict[str, Area], r: Reader) -> tuple[Rule, ...]:
    if not isinstance(value, list):
        r.fail(r.lines.key("", 0, "rule"), "rule", "must be an array of tables: [[rule]]")
        return ()
    declared = _declared(r)
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, body in enumerate(value):
        label = f"rule[{index + 1}]"
        line = r.lines.section("rule", index)
        if not isinstance(body, dict):
            r.fail(line, label, "must be a table")
            continue
        rule = _rule(body, index, label, line, areas, declared, r)
        if rule is None:
            continue
        if rule.name in seen:
            r.fail(
                r.lines.key("rule", index, "name"),
                f"{label}.name",
                f"duplicate rule name {rule.name!r} (first at line {seen[rule.name]})",
            )
        seen.setdefault(rule.name, line)
        rules.append(rule)
    return tuple(rules)


def _rule(
    body: dict[str, Any],
    index: int,
    label: str,
    line: int,
    areas: dict[str, Area],
    declared: set[str],
    r: Reader,
) -> Rule | None:
    def at(key: str) -> int:
        return r.lines.key("rule", index, key)

    def number(key: str, **bounds: Any) -> float:
        if key not in body:
            return 0.0
        value = r.number(body[key], at(key), f"{label}.{key}", **bounds)
        return 0.0 if value is None else value

    def tags(key: str) -> frozenset[str] | None:
        if key not in body:
            return None
        values = r.strings(body[key], at(key), f"{label}.{key}")
        for tag in values or ():
            if not _TAG.fullmatch(tag):
                r.fail(at(key), f"{label}.{key}", f"{tag!r} is not an XML element name")
        return frozenset(values or ())

    r.unknown(body, _RULE_KEYS, ("rule", index), f"{label}.")
    if "name" not in body:
        r.fail(line, f"{label}.name", "every rule needs a name (it is counted and marked)")
        name = None
    else:
        name = r.string(body["name"], at("name"), f"{label}.name")
    action = body.get("action", "release")
    if action not in ACTIONS:
        r.fail(at("action"), f"{label}.action", f"must be one of: {', '.join(ACTIONS)}")
    types = _globs(body.get("types", []), at("types"), f"{label}.types", r)
    in_areas = _area_refs(body.get("areas", []), at("areas"), f"{label}.areas", areas, r, declared)
    not_areas = _area_refs(
        body.get("not_areas", []), at("not_areas"), f"{label}.not_areas", areas, r, declared
    )
    max_age: float | None = None
    if "max_age_s" in body:
        max_age = r.number(body["max_age_s"], at("max_age_s"), f"{label}.max_age_s", unit="seconds")
    keep, strip, allow = tags("keep"), tags("strip") or frozenset(), tags("allow") or frozenset()
    for a, b, first, second in ((keep, strip, "keep", "strip"), (allow, strip, "allow", "strip")):
        both = sorted((a or frozenset()) & b)
        if both:
            r.fail(at(second), f"{label}.{second}", f"{', '.join(both)} also in {first}")
    if keep is not None and "allow" in body:
        r.fail(
            at("allow"),
            f"{label}.allow",
            "allow has no effect with keep (keep lists everything that goes out)",
        )
    useless = sorted(allow - DEFAULT_STRIP - GEOMETRY_TAGS)
    if useless:
        r.fail(
            at("allow"),
            f"{label}.allow",
            f"{', '.join(useless)} not stripped by default (allow lifts only: "
            f"{', '.join(sorted(DEFAULT_STRIP | GEOMETRY_TAGS))})",
        )
    grid = number("grid_m", low=MIN_GRID_M, high=MAX_GRID_M, unit="metres")
    altitude = number("altitude_m", low=0.0, high=100_000.0, unit="metres")
    delay = number("delay_s", low=0.0, high=86_400.0, unit="seconds")
    interval = number("min_interval_s", low=0.0, high=86_400.0, unit="seconds")
    if max_age is not None and delay > 0 and max_age <= delay:
        r.fail(
            at("max_age_s"),
            f"{label}.max_age_s",
            f"{max_age:g} s is not longer than delay_s = {delay:g} s: "
            "no event would ever be old enough to release and young enough to match",
        )
    if action == "withhold":
        shaping = sorted(
            set(body)
            & (_RULE_KEYS - {"name", "types", "areas", "not_areas", "max_age_s", "action"})
        )
        if shaping:
            r.fail(
                at(shaping[0]),
                f"{label}.{shaping[0]}",
                "a withhold rule releases nothing: remove the transform keys "
                f"({', '.join(shaping)})",
            )
    if name is None:
        return None
    return Rule(
        name=name,
        types=types,
        areas=in_areas,
        not_areas=not_areas,
        max_age_s=max_age,
        release=action != "withhold",
        transform=Transform(
            keep=keep,
            strip=strip,
            allow=allow,
            grid_m=grid,
            altitude_m=altitude,
            delay_s=delay,
            min_interval_s=interval,
        ),
        line=line,
    )


def _missions(value: object, r: Reader) -> tuple[MissionShare, ...]:
    """``[[mission]]`` sections: which missions are shared and what of them."""
    if not isinstance(value, list):
        r.fail(r.lines.key("", 0, "mission"), "mission", "must be an array of tables: [[mission]]")
        return ()
    shares: list[MissionShare] = []
    seen: dict[str, int] = {}
    for index, body in enumerate(value):
        label = f"mission[{index + 1}]"
        line = r.lines.section("mission", index)
        if not isinstance(body, dict):
            r.fail(line, label, "must be a table")
            continue

        def at(key: str, index: int = index) -> int:
            return r.lines.key("mission", index, key)

        r.unknown(body, _MISSION_KEYS, ("mission", index), f"{label}.")
        name = None
        if "name" not in body:
            r.fail(line, f"{label}.name", "every [[mission]] needs a name (it is counted)")
        else:
            name = r.string(body["name"], at("name"), f"{label}.name")
        missions = r.strings(body.get("missions", []), at("missions"), f"{label}.missions") or ()
        keywords = r.strings(body.get("keywords", []), at("keywords"), f"{label}.keywords") or ()
        if not missions and not keywords and not ({"missions", "keywords"} & set(body)):
            r.fail(
                line,
                label,
                'names no mission: give missions = ["NAME", ...] (globs) or keywords = [...]',
            )
        parts = []
        for key, allowed in (("share", MISSION_PARTS), ("accept", _MISSION_ACCEPTS)):
            got: tuple[str, ...] = MISSION_PARTS if key == "share" else ()
            if key in body:
                got = (
                    ()
                    if body[key] == []
                    else (r.strings(body[key], at(key), f"{label}.{key}") or ())
                )
            for part in got:
                if part not in allowed:
                    r.fail(
                        at(key),
                        f"{label}.{key}",
                        f"{part!r} is not one of: {', '.join(allowed)}",
                    )
            parts.append(frozenset(p for p in got if p in allowed))
        if "logs" in parts[1] and "logs" not in parts[0]:
            r.fail(
                at("accept"),
                f"{label}.accept",
                'accepts logs from the partner but does not share them: add "logs" to share',
            )
        if name is None:
            continue
        if name in seen:
            r.fail(
                at("name"),
                f"{label}.name",
                f"duplicate [[mission]] name {name!r} (first at line {seen[name]})",
            )
        seen.setdefault(name, line)
        shares.append(MissionShare(name, missions, keywords, parts[0], parts[1], line))
    return tuple(shares)
