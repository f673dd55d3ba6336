"""The observation catalogue: ids, names, types, units and enum labels, loaded once from data.

Decoding, the --obs filter, help text and shell completion all read this one table. Two
lists make it: the AMQP document's (data/observations.tsv) and, for ids outside it, Easee's
full charger observation list (data/observations-wider.tsv, facts only: id, name, type,
tags, unit, the roles that may see it). An entry of the wider list carries the tag
`unlisted`, so a record says that its id is not in the AMQP list.
"""

from __future__ import annotations

import builtins
import csv
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache

VALUE_TYPES = ("Integer", "Double", "Boolean", "String", "Position")
UNLISTED = "unlisted"  # the tag of an entry from the wider list
REVERSED_TOKEN_ID = 108  # UserIDTokenReversed: the document says to reverse it back
_PYTHON_TYPES: dict[str, type[object]] = {
    "Double": float, "Integer": int, "Boolean": bool, "String": str}


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
    roles: tuple[str, ...] = ()  # who may see it, where the list says (wider list only)
    # decode's straight line: the Python type a plain value of it has (None: never)
    fast: builtins.type[object] | None = field(default=None, init=False)
    labelled: bool = field(default=False, init=False)  # it has enum labels or flag names

    @property
    def carries_json(self) -> bool:
        return "json" in self.tags

    def __post_init__(self) -> None:
        # decode's straight line reads it: a plain scalar taken as it comes (not JSON text
        # to parse, not the reversed token, a type Easee publishes)
        object.__setattr__(self, "fast", _PYTHON_TYPES.get(self.type) if (
            not self.carries_json and self.id != REVERSED_TOKEN_ID) else None)
        object.__setattr__(self, "labelled", bool(self.labels or self.flags))

    @property
    def listed(self) -> bool:
        """Whether the AMQP document lists it (else it is from Easee's wider list)."""
        return UNLISTED not in self.tags

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
    def __init__(self, text: str, suggestions: list[str], number: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.suggestions = suggestions
        self.number = number  # an id in neither list (suggestions are the nearest ids)


class Catalogue:
    def __init__(self, entries: list[ObservationType]) -> None:
        self._by_id = {entry.id: entry for entry in entries}
        self._by_name = {entry.name.lower(): entry for entry in entries}
        self._by_text = {str(entry.id): entry for entry in entries}
        # The entry for an id as a routing key writes it (`109`): decode's fast path, so the
        # dictionary's own lookup (a method of ours would cost a call a message).
        self.by_route: Callable[[str], ObservationType | None] = self._by_text.get

    def __iter__(self) -> Iterator[ObservationType]:
        return iter(sorted(self._by_id.values(), key=lambda entry: entry.id))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, observation_id: int) -> ObservationType | None:
        return self._by_id.get(observation_id)

    def resolve(self, text: str) -> int:
        """An observation id from a user's id or name (case-insensitive), either list."""
        text = text.strip()
        if text.isascii() and text.isdecimal():
            number = int(text)
            if number in self._by_id:
                return number
            nearest = sorted(self._by_id, key=lambda known: (abs(known - number), known))[:3]
            raise UnknownObservation(
                text, [f"{known} {self._by_id[known].name}" for known in sorted(nearest)],
                number=True)
        entry = self._by_name.get(text.lower())
        if entry is not None:
            return entry.id
        names = [e.name for e in self._by_id.values()]
        lowered = {name.lower(): name for name in names}
        import difflib  # only for a name that is not there
        close = difflib.get_close_matches(text.lower(), list(lowered), n=3, cutoff=0.6)
        contains = [name for name in names if text.lower() in name.lower()]
        found = list(dict.fromkeys([lowered[c] for c in close] + contains))
        # the AMQP list's names first: what the stream carries most
        found.sort(key=lambda name: not self._by_name[name.lower()].listed)
        suggestions = found[:5]
        raise UnknownObservation(text, suggestions)


def _parse_tsv(text: str, enums: Mapping[str, Mapping[str, object]],
               wider: bool = False) -> list[ObservationType]:
    entries = []
    for row in csv.DictReader(text.splitlines(), delimiter="\t"):
        enum = enums.get(row["id"], {})
        labels = enum.get("labels", {})
        flags = enum.get("flags", {})
        assert isinstance(labels, dict) and isinstance(flags, dict)
        # the wider list leaves a type out where Easee publishes none: the value is kept as sent
        if row["type"] not in VALUE_TYPES and not (wider and row["type"] == ""):
            raise ValueError(f"catalogue: observation {row['id']} has unknown type {row['type']!r}")
        tags = tuple(tag for tag in row["tags"].split(",") if tag)
        entries.append(
            ObservationType(
                id=int(row["id"]),
                name=row["name"],
                type=row["type"],
                tags=(*tags, UNLISTED) if wider else tags,
                unit=row["unit"] or None,
                unit_inferred=row["unit_source"] == "inferred",
                description=row.get("description") or "",
                labels={int(code): label for code, label in labels.items()},
                flags={int(bit): name for bit, name in flags.items()},
                roles=tuple(role for role in (row.get("roles") or "").split(",") if role),
            )
        )
    return entries


@cache
def load() -> Catalogue:
    from importlib.resources import files
    data = files("easee_tail") / "data"
    enums = json.loads((data / "enums.json").read_text(encoding="utf-8"))
    enums.pop("_about", None)
    listed = _parse_tsv((data / "observations.tsv").read_text(encoding="utf-8"), enums)
    known = {entry.id for entry in listed}
    wider = [entry for entry in _parse_tsv(
        (data / "observations-wider.tsv").read_text(encoding="utf-8"), enums, wider=True)
        if entry.id not in known]
    return Catalogue(listed + wider)
