"""Groups: server-side channels with a direction (reference tak-protocol §5).

An event carries its sender's IN groups; a receiver gets it if it is in the OUT group of the
same name. ``__group`` in an SA is team colour and has nothing to do with this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ANON = "__ANON__"


@dataclass(frozen=True, slots=True)
class Membership:
    """The groups one party sends into (``inbound``) and hears from (``outbound``)."""

    inbound: frozenset[str]
    outbound: frozenset[str]

    @classmethod
    def both(cls, names: Iterable[str]) -> Membership:
        """Member in both directions of each group (the usual case)."""
        names = frozenset(names)
        return cls(names, names)

    def reaches(self, receiver: Membership) -> bool:
        """Whether what this party sends may be delivered to ``receiver``."""
        return not self.inbound.isdisjoint(receiver.outbound)


ANONYMOUS = Membership.both([ANON])


class GroupsFileError(ValueError):
    """The groups mapping is not of the documented shape."""


def parse_groups_map(data: Mapping[str, object]) -> dict[str, Membership]:
    """Read the CN -> groups mapping of a groups file.

    Each value is a list of group names (both directions) or a table
    ``{ in = [...], out = [...], both = [...] }``.
    """
    out: dict[str, Membership] = {}
    for cn, value in data.items():
        if isinstance(value, list):
            out[cn] = Membership.both(_names(cn, value))
        elif isinstance(value, Mapping):
            unknown = set(value) - {"in", "out", "both"}
            if unknown:
                raise GroupsFileError(f"{cn}: unknown key(s) {sorted(unknown)}; use in/out/both")
            both = _names(cn, value.get("both", []))
            out[cn] = Membership(
                frozenset(_names(cn, value.get("in", []))) | both,
                frozenset(_names(cn, value.get("out", []))) | both,
            )
        else:
            raise GroupsFileError(f"{cn}: expected a list of group names or an in/out table")
    return out


def _names(cn: str, value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise GroupsFileError(f"{cn}: groups must be a list of non-empty names")
    return frozenset(value)
