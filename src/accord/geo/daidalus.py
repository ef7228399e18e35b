"""DAIDALUS's file formats: ``.conf`` parameters into a :class:`SeparationConfig`, ``.daa``
encounter files into tracks.

Both are text; these functions take the text and a name for messages, and every error names
``name:line``. A ``.conf`` is ``key = value [unit]`` lines (``#`` comments); the separation core
models one cylinder, so a configuration whose levels use different volumes, a tau (TTHR) or
time-to-co-altitude (TCOA) term, or sensor-uncertainty z-scores is refused with the key named
rather than read approximately. A ``.daa`` file is a header of column names, a row of units,
then one row per aircraft per time step (the first aircraft of each step is the ownship).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from accord.geo.config import SeparationConfig, SeparationConfigError
from accord.geo.track import Track, track_problem

_FT_M = 0.3048
_NMI_M = 1852.0
_UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0), "km": ("length", 1000.0), "ft": ("length", _FT_M),
    "nmi": ("length", _NMI_M), "nm": ("length", _NMI_M), "NM": ("length", _NMI_M),
    "m/s": ("speed", 1.0), "mps": ("speed", 1.0), "knot": ("speed", _NMI_M / 3600.0),
    "kn": ("speed", _NMI_M / 3600.0), "kts": ("speed", _NMI_M / 3600.0),
    "fpm": ("speed", _FT_M / 60.0), "ft/min": ("speed", _FT_M / 60.0),
    "kph": ("speed", 1000.0 / 3600.0), "km/h": ("speed", 1000.0 / 3600.0),
    "s": ("time", 1.0), "ms": ("time", 0.001), "min": ("time", 60.0), "h": ("time", 3600.0),
    "deg": ("angle", 1.0), "rad": ("angle", 180.0 / math.pi),
    "m/s^2": ("accel", 1.0), "G": ("accel", 9.80665),
    "deg/s": ("rate", 1.0), "unitless": ("none", 1.0), "none": ("none", 1.0),
}  # fmt: skip


class DaidalusError(ValueError):
    """A DAIDALUS file cannot be read; the message starts with ``file:line:``."""


# -- .conf ----------------------------------------------------------------------------------

_CONF_LINE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*(?:\[\s*([^\]]*?)\s*\])?\s*$")


def _number(text: str, unit: str | None, kind: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DaidalusError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DaidalusError(f"{where}: {text!r} is not a finite number")
    if unit is None:
        return value  # DAIDALUS's internal units are SI
    known = _UNITS.get(unit)
    if known is None or known[0] != kind:
        raise DaidalusError(f"{where}: unit [{unit}] is not a {kind} unit")
    return value * known[1]


class _Conf:
    """The ``key = value [unit]`` entries of a ``.conf`` file, read with their units."""

    def __init__(self, text: str, name: str) -> None:
        self.name = name
        self.entries: dict[str, tuple[str, str | None, str]] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.split("#", 1)[0].strip()
            if not stripped:
                continue
            match = _CONF_LINE.match(stripped)
            if match is None:
                raise DaidalusError(f"{name}:{number}: not a 'key = value [unit]' line: {line!r}")
            key, value, unit = match.groups()
            self.entries[key] = (value, unit, f"{name}:{number}")

    def where(self, key: str) -> str:
        return self.entries[key][2] if key in self.entries else self.name

    def text(self, key: str) -> str:
        return self.entries[key][0] if key in self.entries else ""

    def get(self, key: str, kind: str) -> float | None:
        if key not in self.entries:
            return None
        value, unit, where = self.entries[key]
        return _number(value, unit, kind, f"{where}: {key}")

    def volume(self, prefix: str) -> tuple[float, float]:
        """The cylinder (H, V) of the detector whose keys start with ``prefix``."""
        for key, what in (("WCV_TTHR", "a tau threshold"), ("WCV_TCOA", "a time to co-altitude")):
            if self.get(prefix + key, "time"):
                raise DaidalusError(
                    f"{self.where(prefix + key)}: {prefix + key} = {self.text(prefix + key)}: "
                    f"{what} is not supported; Accord's volume is a cylinder (set it to 0)"
                )
        for h_key, v_key in (("WCV_DTHR", "WCV_ZTHR"), ("D", "H")):
            h, v = self.get(prefix + h_key, "length"), self.get(prefix + v_key, "length")
            if h is not None and v is not None:
                return h, v
        raise DaidalusError(
            f"{self.name}: no cylinder for detector {prefix.rstrip('_')!r} "
            "(WCV_DTHR and WCV_ZTHR, or D and H)"
        )


def decode_conf(text: str, name: str) -> SeparationConfig:
    """A DAIDALUS configuration (e.g. the corpus's ``uas.conf``) as Accord's thresholds."""
    conf = _Conf(text, name)
    values: dict[str, float | int] = {}
    for key, ours in (
        ("lookahead_time", "lookahead_s"),
        ("hysteresis_time", "hysteresis_s"),
        ("persistence_time", "persistence_s"),
    ):
        seconds = conf.get(key, "time")
        if seconds is not None:
            values[ours] = seconds
    for key in ("alerting_m", "alerting_n"):
        count = conf.get(key, "none")
        if count is not None:
            if count != int(count) or count < 0:
                raise DaidalusError(f"{conf.where(key)}: {key} must be a whole number >= 0")
            values[key] = int(count)
    for key in ("h_pos_z_score", "h_vel_z_score_min", "h_vel_z_score_max", "v_pos_z_score",
                "v_vel_z_score"):  # fmt: skip
        if conf.get(key, "none"):
            raise DaidalusError(
                f"{conf.where(key)}: {key} = {conf.text(key)}: sensor-uncertainty mitigation "
                "is not supported; set the z-scores to 0 (Accord widens by ce/le instead)"
            )
    if "alerters" not in conf.entries:
        raise DaidalusError(f"{name}: no 'alerters = NAME' line")
    alerter = conf.text("alerters").split(",")[0].strip()
    levels = sorted(
        {int(m[1]) for key in conf.entries if (m := re.match(rf"{alerter}_alert_(\d+)_", key))}
    )
    if levels != [1, 2, 3]:
        raise DaidalusError(
            f"{conf.where('alerters')}: alerter {alerter!r} has levels {levels}; Accord uses "
            "exactly 3 (caution, warning, loss)"
        )
    volumes: set[tuple[float, float]] = set()
    for level, prefix in zip(levels, ("caution", "warning", "loss"), strict=True):
        base = f"{alerter}_alert_{level}_"
        alerting = conf.get(base + "alerting_time", "time")
        early = conf.get(base + "early_alerting_time", "time")
        if alerting is not None:
            values[f"{prefix}_alerting_s"] = alerting
            values[f"{prefix}_early_alerting_s"] = alerting if early is None else early
        volumes.add(conf.volume(f"{alerter}_{conf.text(base + 'detector')}_"))
    if len(volumes) != 1:
        raise DaidalusError(
            f"{name}: the levels of {alerter!r} use different volumes {sorted(volumes)}; "
            "Accord uses one cylinder for all levels"
        )
    ((values["horizontal_m"], values["vertical_m"]),) = volumes
    try:
        return SeparationConfig().replace(values, name)
    except SeparationConfigError as exc:
        raise DaidalusError(str(exc)) from None


# -- .daa -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """A ``.daa`` file: aircraft names in order of appearance, and the states per time step."""

    aircraft: tuple[str, ...]
    steps: tuple[tuple[float, tuple[Track, ...]], ...]  # (time, states; ownship first)


_COLUMNS = {
    "name": "none", "lat": "angle", "lon": "angle", "alt": "length", "trk": "angle",
    "gs": "speed", "vs": "speed", "vx": "speed", "vy": "speed", "vz": "speed", "time": "time",
}  # fmt: skip


def _unit(text: str) -> str:
    return text.strip().strip("[]").strip()


def decode_daa(text: str, name: str) -> Scenario:
    """The encounter in a ``.daa`` file; bad rows raise :class:`DaidalusError` (``name:line``)."""
    rows = [
        (number, line.split("#", 1)[0].strip())
        for number, line in enumerate(text.splitlines(), start=1)
    ]
    rows = [(number, line) for number, line in rows if line]
    if len(rows) < 2:
        raise DaidalusError(f"{name}:1: a .daa file needs a header row and a units row")
    (head_no, head), (units_no, units) = rows[0], rows[1]
    columns = [c.strip().lower() for c in re.split(r"[,\s]+", head) if c.strip()]
    unit_cells = [_unit(u) for u in re.split(r",|\s+(?=\[)", units) if u.strip()]
    if len(unit_cells) != len(columns):
        raise DaidalusError(
            f"{name}:{units_no}: {len(unit_cells)} units for {len(columns)} columns"
        )
    needed = {"name", "lat", "lon", "alt", "time"}
    horizontal = ({"trk", "gs"} <= set(columns)) or ({"vx", "vy"} <= set(columns))
    missing = needed - set(columns)
    if missing or not horizontal:
        what = ", ".join(sorted(missing)) if missing else "trk and gs (or vx and vy)"
        raise DaidalusError(f"{name}:{head_no}: missing column(s) {what}")
    scale: dict[str, float] = {}
    for column, unit in zip(columns, unit_cells, strict=True):
        kind = _COLUMNS.get(column)
        if kind is None or column == "name":
            continue
        known = _UNITS.get(unit)
        if known is None or known[0] != kind:
            raise DaidalusError(f"{name}:{units_no}: column {column} has unit [{unit}], "
                                f"not a {kind} unit")  # fmt: skip
        scale[column] = known[1]
    index = {column: i for i, column in enumerate(columns)}
    aircraft: list[str] = []
    steps: list[tuple[float, list[Track]]] = []
    for number, line in rows[2:]:
        where = f"{name}:{number}"
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(columns):
            raise DaidalusError(f"{where}: {len(cells)} values for {len(columns)} columns")
        values: dict[str, float] = {}
        for column, i in index.items():
            if column not in scale:
                continue
            try:
                values[column] = float(cells[i]) * scale[column]
            except ValueError:
                raise DaidalusError(f"{where}: {column} = {cells[i]!r} is not a number") from None
        uid = cells[index["name"]]
        if not uid:
            raise DaidalusError(f"{where}: empty aircraft name")
        if "trk" in values and "gs" in values:
            track_deg, speed = values["trk"] % 360.0, values["gs"]
        else:
            track_deg = math.degrees(math.atan2(values["vx"], values["vy"])) % 360.0
            speed = math.hypot(values["vx"], values["vy"])
        state = Track(
            uid=uid, time_s=values["time"], lat_deg=values["lat"], lon_deg=values["lon"],
            alt_m=values["alt"], track_deg=track_deg, speed_mps=speed,
            vertical_speed_mps=values.get("vs", values.get("vz", 0.0)), own=True,
        )  # fmt: skip
        problem = track_problem(state)
        if problem is not None or math.isnan(track_deg):
            raise DaidalusError(f"{where}: {uid}: {problem or 'not a number'}")
        if steps and state.time_s < steps[-1][0]:
            raise DaidalusError(f"{where}: time {state.time_s} s goes back "
                                f"(previous {steps[-1][0]} s)")  # fmt: skip
        if not steps or state.time_s > steps[-1][0]:
            steps.append((state.time_s, []))
        if any(t.uid == uid for t in steps[-1][1]):
            raise DaidalusError(f"{where}: {uid} twice at time {state.time_s} s")
        steps[-1][1].append(state)
        if uid not in aircraft:
            aircraft.append(uid)
    if not steps:
        raise DaidalusError(f"{name}:{units_no}: no states after the units row")
    return Scenario(tuple(aircraft), tuple((t, tuple(states)) for t, states in steps))
