"""A partner's release policy as frozen values: areas, rules, transforms.

:func:`accord.policy.parse.decode_policy` builds these from TOML; :func:`accord.policy.apply.decide`
evaluates them. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Top-level detail children that never leave unless a rule lets them through (``allow`` or
# ``keep``): server-internal names (_flow-tags_), stream addresses and sometimes credentials
# (__video), free text (remarks), camera geometry that reveals the true position (sensor),
# Accord's own routing (marti), the UAS Tool's pilot device uid (_route sender) and a release
# marking from upstream (__release, always replaced).
DEFAULT_STRIP = frozenset({"_flow-tags_", "__video", "remarks", "sensor", "marti", "_route"})
# Stripped when a rule coarsens positions, unless kept: coordinates that the grid cannot reach.
GEOMETRY_TAGS = frozenset({"shape", "sensor"})
RELEASE_TAG = "__release"


@dataclass(frozen=True, slots=True)
class Polygon:
    """Vertices as (lat, lon) degrees; closed implicitly. May cross the antimeridian."""

    vertices: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Circle:
    """Centre in degrees and radius in metres (great-circle distance)."""

    lat: float
    lon: float
    radius_m: float


Shape = Polygon | Circle


@dataclass(frozen=True, slots=True)
class Area:
    name: str
    shape: Shape


@dataclass(frozen=True, slots=True)
class Transform:
    """What a releasing rule does to the event. Zero/None/empty means "leave as is"."""

    keep: frozenset[str] | None = None  # allow-list of top-level detail tags, if given
    strip: frozenset[str] = frozenset()  # stripped in addition to DEFAULT_STRIP
    allow: frozenset[str] = frozenset()  # DEFAULT_STRIP/GEOMETRY_TAGS entries to let through
    grid_m: float = 0.0  # position snapped to the centre of a grid cell this many metres wide
    altitude_m: float = 0.0  # hae rounded to a multiple of this many metres
    delay_s: float = 0.0  # held until event time + delay
    min_interval_s: float = 0.0  # at most one release per uid and rule in this interval

    def stripped(self, tag: str) -> bool:
        """Whether a top-level detail child with this tag is removed."""
        if tag == RELEASE_TAG:
            return True
        if tag in self.strip:
            return True
        if self.keep is not None:
            return tag not in self.keep
        if tag in DEFAULT_STRIP or (self.grid_m > 0 and tag in GEOMETRY_TAGS):
            return tag not in self.allow
        return False


@dataclass(frozen=True, slots=True)
class Rule:
    """One ordered rule: the first rule whose match holds decides."""

    name: str
    types: tuple[str, ...] = ()  # fnmatch globs; empty = every type
    areas: tuple[str, ...] = ()  # the point must lie in one of these; empty = anywhere
    not_areas: tuple[str, ...] = ()  # the point must lie in none of these
    max_age_s: float | None = None  # now - event time must not exceed this
    release: bool = True  # False: a matching event is withheld (action = "withhold")
    transform: Transform = Transform()
    line: int = 0  # where the rule starts in its file, for explanations


@dataclass(frozen=True, slots=True)
class Withheld:
    """``always_withhold``: checked before any rule."""

    types: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()


MISSION_PARTS = ("items", "files", "logs")  # what of a mission a ``[[mission]]`` shares


@dataclass(frozen=True, slots=True)
class MissionShare:
    """One ``[[mission]]`` section: which missions are shared with the partner (by name glob or
    keyword), what of them goes out (``share``) and what the partner's mirror may send back
    (``accept``: only logs). The CoT items of a shared mission still pass the rules."""

    name: str
    missions: tuple[str, ...] = ()  # fnmatch globs on the mission name
    keywords: tuple[str, ...] = ()  # or: a mission carrying any of these keywords
    share: frozenset[str] = frozenset(MISSION_PARTS)
    accept: frozenset[str] = frozenset()
    line: int = 0


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    partner: str
    version: str  # "sha256:" + first 16 hex digits of the policy file's bytes
    rules: tuple[Rule, ...] = ()
    areas: dict[str, Area] = field(default_factory=dict)
    always_withhold: Withheld = Withheld()
    pseudonymise: bool = False
    pseudonym_prefix: str = ""
    secret: bytes | None = None  # HMAC key for pseudonyms; may be passed to decide() instead
    valid_from_ms: int | None = None
    valid_until_ms: int | None = None
    missions: tuple[MissionShare, ...] = ()  # ``[[mission]]``: none shares no mission
