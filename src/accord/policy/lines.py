"""Reading a policy file's values with every problem named by line, key and why.

``tomllib`` reports line numbers only for syntax errors, so the lines of tables and keys are
found by scanning the source text (:class:`Lines`): each ``[table]`` / ``[[rule]]`` header
opens a section and each ``key =`` line inside it is recorded. The scan ignores lines inside
multi-line arrays; a key written as an inline table or a dotted key elsewhere falls back to the
line of its section. :class:`Reader` collects the issues while values are read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*=""")


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a policy file: where, which key, and why."""

    line: int
    key: str
    message: str

    def format(self, filename: str) -> str:
        return f"{filename}:{self.line}: {self.key}: {self.message}"


class PolicyError(ValueError):
    """A policy file that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(f"line {i.line}: {i.key}: {i.message}" for i in issues))
        self.issues = issues


@dataclass
class Lines:
    """Where sections and keys are in the source text."""

    sections: dict[tuple[str, int], int] = field(default_factory=dict)
    keys: dict[tuple[str, int, str], int] = field(default_factory=dict)

    @classmethod
    def scan(cls, text: str) -> Lines:
        found = cls()
        counts: dict[str, int] = {}
        section, index = "", 0
        depth = 0  # open brackets of a multi-line array value
        for number, line in enumerate(text.splitlines(), start=1):
            if depth > 0:
                depth += bracket_balance(line)
                continue
            header = _HEADER.match(line)
            if header:
                section = header.group(2).replace('"', "").replace("'", "")
                index = counts.get(section, 0)
                counts[section] = index + 1
                found.sections.setdefault((section, index), number)
                continue
            key = _KEY.match(line)
            if key:
                name = key.group(1).strip("\"'")
                found.keys.setdefault((section, index, name), number)
                depth = max(0, bracket_balance(line[key.end() :]))
        return found

    def section(self, section: str, index: int = 0) -> int:
        return self.sections.get((section, index), 1)

    def key(self, section: str, index: int, name: str) -> int:
        return self.keys.get((section, index, name), self.section(section, index))


def bracket_balance(text: str) -> int:
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'[^\']*\'', "", text.split("#", 1)[0])
    return text.count("[") - text.count("]")


class Reader:
    """Collects issues while reading values of the right type."""

    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        self.issues: list[Issue] = []

    def fail(self, line: int, key: str, message: str) -> None:
        self.issues.append(Issue(line, key, message))

    def unknown(
        self, table: dict[str, Any], allowed: frozenset[str], where: tuple[str, int], label: str
    ) -> None:
        for name in table:
            if name not in allowed:
                self.fail(
                    self.lines.key(*where, name),
                    f"{label}{name}",
                    f"unknown key (expected one of: {', '.join(sorted(allowed))})",
                )

    def string(self, value: object, line: int, key: str) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.fail(line, key, "must be a non-empty string")
            return None
        return value

    def number(
        self,
        value: object,
        line: int,
        key: str,
        *,
        low: float = 0.0,
        high: float = math.inf,
        unit: str = "",
    ) -> float | None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.fail(line, key, f"must be a number{' of ' + unit if unit else ''}")
            return None
        if not low <= value <= high:
            bound = f"at least {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
            self.fail(
                line, key, f"{value:g} is out of range: must be {bound}{' ' + unit if unit else ''}"
            )
            return None
        return float(value)

    def strings(self, value: object, line: int, key: str) -> tuple[str, ...] | None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(line, key, "must be a list of non-empty strings")
            return None
        return tuple(value)
