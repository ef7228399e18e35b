"""A spatial index over the whole earth: tracks bucketed in cells of about ``cell_m``.

Rows are bands of latitude ``cell_m`` high; each row is cut into as many columns as fit
``cell_m`` wide at its poleward edge, so no cell is narrower than ``cell_m`` and the columns
wrap at the antimeridian. :meth:`Grid.near` returns the uids in every cell that a circle of
``radius_m`` can touch (a superset; the caller measures the exact distance).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from accord.geo.enu import EARTH_RADIUS_M

M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0


class Grid:
    """uid -> cell, cell -> uids; ``put`` moves a uid, ``remove`` forgets it."""

    def __init__(self, cell_m: float) -> None:
        if cell_m <= 0:
            raise ValueError(f"cell_m = {cell_m}: must be greater than 0")
        self.cell_m = cell_m
        self._row_deg = min(180.0, cell_m / M_PER_DEG)
        self._rows = math.ceil(180.0 / self._row_deg)
        self._columns: dict[int, int] = {}
        self._cells: dict[tuple[int, int], set[str]] = {}
        self._where: dict[str, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, uid: object) -> bool:
        return uid in self._where

    def _row(self, lat_deg: float) -> int:
        return min(self._rows - 1, max(0, int((lat_deg + 90.0) // self._row_deg)))

    def _row_edge_deg(self, row: int) -> float:
        """The row's latitude closest to a pole (where its cells are narrowest)."""
        low = -90.0 + row * self._row_deg
        return max(abs(low), abs(min(90.0, low + self._row_deg)))

    def _ncols(self, row: int) -> int:
        count = self._columns.get(row)
        if count is None:
            circumference = (
                2.0 * math.pi * EARTH_RADIUS_M * math.cos(math.radians(self._row_edge_deg(row)))
            )
            count = max(1, int(circumference // self.cell_m))
            self._columns[row] = count
        return count

    def _cell(self, lat_deg: float, lon_deg: float) -> tuple[int, int]:
        row = self._row(lat_deg)
        ncols = self._ncols(row)
        return row, int((lon_deg + 180.0) / 360.0 * ncols) % ncols

    def put(self, uid: str, lat_deg: float, lon_deg: float) -> None:
        cell = self._cell(lat_deg, lon_deg)
        old = self._where.get(uid)
        if old == cell:
            return
        if old is not None:
            self._discard(uid, old)
        self._where[uid] = cell
        self._cells.setdefault(cell, set()).add(uid)

    def remove(self, uid: str) -> None:
        old = self._where.pop(uid, None)
        if old is not None:
            self._discard(uid, old)

    def _discard(self, uid: str, cell: tuple[int, int]) -> None:
        members = self._cells[cell]
        members.discard(uid)
        if not members:
            del self._cells[cell]

    def near(self, lat_deg: float, lon_deg: float, radius_m: float) -> Iterator[str]:
        """Every uid in a cell within ``radius_m`` of the point (and maybe a few more)."""
        span_rows = math.ceil(radius_m / self.cell_m)
        centre = self._row(lat_deg)
        lat_reach = min(90.0, abs(lat_deg) + radius_m / M_PER_DEG)
        cos_reach = math.cos(math.radians(lat_reach))
        for row in range(max(0, centre - span_rows), min(self._rows, centre + span_rows + 1)):
            ncols = self._ncols(row)
            col = int((lon_deg + 180.0) / 360.0 * ncols) % ncols
            width_m = 2.0 * math.pi * EARTH_RADIUS_M * cos_reach / ncols
            span = ncols if width_m <= 0 else math.ceil(radius_m / width_m) + 1
            if 2 * span + 1 >= ncols:
                columns: range | list[int] = range(ncols)
            else:
                columns = [(col + d) % ncols for d in range(-span, span + 1)]
            for c in columns:
                members = self._cells.get((row, c))
                if members:
                    yield from members
