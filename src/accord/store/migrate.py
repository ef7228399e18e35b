"""Numbered schema migrations: ``migrations/<backend>/NNNN_name.sql``, applied in order.

The applied numbers are kept in ``schema_migrations``; a database newer than this program
(a number it does not know) is refused rather than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from accord.store.contract import StoreError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    sql: str


def migrations(backend: str) -> list[Migration]:
    """The migrations shipped for ``backend`` ("sqlite" or "postgres"), in order."""
    folder = resources.files("accord.store") / "migrations" / backend
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if numbers != list(range(1, len(found) + 1)):
        raise StoreError(f"{backend} migrations are not numbered 1..n: {numbers}")
    return found


def pending(backend: str, applied: set[int]) -> list[Migration]:
    """What still has to run; raises when the database is ahead of this program."""
    known = migrations(backend)
    unknown = applied - {m.number for m in known}
    if unknown:
        raise StoreError(
            f"the database has schema migration(s) {sorted(unknown)} this Accord does not "
            "know: it was opened by a newer version; upgrade Accord"
        )
    return [m for m in known if m.number not in applied]
