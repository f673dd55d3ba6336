"""The observation catalogue: ids, names, types, units and enum labels, loaded once from data.

Decoding, the --obs filter, help text and shell completion all read this one table.
"""

from __future__ import annotations

import csv
import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

VALUE_TYPES = ("Integer", "Double", "Boolean", "String")


@dataclass(frozen=True, slots=True)
class ObservationType:
    id: int
    name: str
    type: str  # one of VALUE_TYPES
    tags: tuple[str, ...]
    unit: str | None
    unit_inferred: bool
    description: str
    labels: Mapping[int, str] = field(default_factory=dict)
    flags: Mapping[int, str] = field(default_factory=dict)

    @property
    def carries_json(self) -> bool:
        return "json" in self.tags

    def label(self, value: object) -> str | None:
        """The enum label of a value, the flag names of a bit mask, or None."""
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if self.labels:
            return self.labels.get(value)
        if self.flags:
            return describe_flags(value, self.flags)
        return None


def describe_flags(mask: int, flags: Mapping[int, str]) -> str | None:
    """The names of the bits set; None for what cannot be a mask (negative, over 64 bits)."""
    if mask == 0:
        return "none"
    if mask < 0 or mask >> 64:
        return None
    names = []
    bit = 0
    while mask >> bit:
        if mask >> bit & 1:
            names.append(flags.get(bit, f"bit {bit}"))
        bit += 1
    return ", ".join(names)


class UnknownObservation(LookupError):
    def __init__(self, text: str, suggestions: list[str]) -> None:
        super().__init__(text)
        self.text = text
        self.suggestions = suggestions


class Catalogue:
    def __init__(self, entries: list[ObservationType]) -> None:
        self._by_id = {entry.id: entry for entry in entries}
        self._by_name = {entry.name.lower(): entry for entry in entries}

    def __iter__(self) -> Iterator[ObservationType]:
        return iter(sorted(self._by_id.values(), key=lambda entry: entry.id))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, observation_id: int) -> ObservationType | None:
        return self._by_id.get(observation_id)

    def resolve(self, text: str) -> int:
        """An observation id from a user's id or name (case-insensitive).

        Any number is accepted, catalogued or not: the stream carries ids the document
        does not list, and a user may want to watch exactly those.
        """
        text = text.strip()
        if text.isascii() and text.isdecimal():
            return int(text)
        entry = self._by_name.get(text.lower())
        if entry is not None:
            return entry.id
        names = [e.name for e in self._by_id.values()]
        lowered = {name.lower(): name for name in names}
        close = difflib.get_close_matches(text.lower(), list(lowered), n=3, cutoff=0.6)
        contains = [name for name in names if text.lower() in name.lower()]
        suggestions = list(dict.fromkeys([lowered[c] for c in close] + contains))[:5]
        raise UnknownObservation(text, suggestions)


def _parse_tsv(text: str, enums: Mapping[str, Mapping[str, object]]) -> list[ObservationType]:
    entries = []
    for row in csv.DictReader(text.splitlines(), delimiter="\t"):
        enum = enums.get(row["id"], {})
        labels = enum.get("labels", {})
        flags = enum.get("flags", {})
        assert isinstance(labels, dict) and isinstance(flags, dict)
        if row["type"] not in VALUE_TYPES:
            raise ValueError(f"catalogue: observation {row['id']} has unknown type {row['type']!r}")
        entries.append(
            ObservationType(
                id=int(row["id"]),
                name=row["name"],
                type=row["type"],
                tags=tuple(tag for tag in row["tags"].split(",") if tag),
                unit=row["unit"] or None,
                unit_inferred=row["unit_source"] == "inferred",
                description=row["description"],
                labels={int(code): label for code, label in labels.items()},
                flags={int(bit): name for bit, name in flags.items()},
            )
        )
    return entries


@cache
def load() -> Catalogue:
    data = files("easee_tail") / "data"
    enums = json.loads((data / "enums.json").read_text(encoding="utf-8"))
    enums.pop("_about", None)
    return Catalogue(_parse_tsv((data / "observations.tsv").read_text(encoding="utf-8"), enums))
