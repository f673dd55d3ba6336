"""The observation catalogue: ids, names, types, units and enum labels, loaded once from data.

Decoding, the --obs filter, help text and shell completion all read this one table. Two
lists make it: the AMQP document's (data/observations.tsv) and, for ids outside it, Easee's
full charger observation list (data/observations-wider.tsv, facts only: id, name, type,
tags, unit, the roles that may see it). An entry of the wider list carries the tag
`unlisted`, so a record says that its id is not in the AMQP list.

Each list has a `sources` column: which public sources say what of an observation, where they
disagree or where a label comes from (`type Double: evcc, homey; type Integer: amqp-doc`;
the source keys are data/sources.json's). The type column holds the decision; a value of a
type some source claims is taken as it comes, without a note. So the next disagreement is a
change of data, not of code.

Other kinds of device use other numbers: an Equalizer (serials QP...) has its own list
(data/observations-equalizer.tsv), in which 31 is a current, not IsEnabled. Which serials
are which kind is data too (data/devices.json); `Catalogue.of(serial)` gives a device's list.
"""

from __future__ import annotations

import builtins
import csv
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

VALUE_TYPES = ("Integer", "Double", "Boolean", "String", "Position")
UNLISTED = "unlisted"  # the tag of an entry from the wider list
REVERSED_TOKEN_ID = 108  # UserIDTokenReversed: the document says to reverse it back
_PYTHON_TYPES: dict[str, type[object]] = {
    "Double": float, "Integer": int, "Boolean": bool, "String": str}


@dataclass(frozen=True, slots=True)
class Claim:
    """What some sources say of an observation: `what` (type, unit, labels, ...) `value`,
    by `sources`, with a remark."""

    what: str
    value: str
    sources: tuple[str, ...]
    remark: str = ""

    @classmethod
    def parse_all(cls, text: str) -> tuple[Claim, ...]:
        """`type Double: evcc, homey; type Integer: amqp-doc (its remark)`."""
        claims = []
        for part in (part.strip() for part in text.split(";")):
            if not part:
                continue
            remark = ""
            if part.endswith(")") and "(" in part:
                part, remark = part[:part.index("(")].strip(), part[part.index("(") + 1:-1]
            head, _, who = part.partition(":")
            what, _, value = head.strip().partition(" ")
            claims.append(cls(what, value.strip(), tuple(
                source.strip() for source in who.split(",") if source.strip()), remark))
        return tuple(claims)

    def __str__(self) -> str:
        return f"{self.what} {self.value}".strip() + ": " + ", ".join(self.sources) + (
            f" ({self.remark})" if self.remark else "")


@dataclass(frozen=True, slots=True)
class ObservationType:
    id: int
    name: str
    type: str  # one of VALUE_TYPES
    tags: tuple[str, ...]
    unit: str | None
    unit_inferred: bool
    description: str
    labels: Mapping[int | str, str] = field(default_factory=dict)  # a String's: by letter
    flags: Mapping[int, str] = field(default_factory=dict)
    roles: tuple[str, ...] = ()  # who may see it, where the list says (wider list only)
    codes: Mapping[int, str] = field(default_factory=dict)  # beside flags: one code's reading
    claims: tuple[Claim, ...] = ()  # the sources column: who says what
    device: str = "charger"  # the kind of device whose list it is in
    # decode's straight line: the Python type a plain value of it has (None: never)
    fast: builtins.type[object] | None = field(default=None, init=False)
    labelled: bool = field(default=False, init=False)  # it has enum labels or flag names
    # every type some source gives it, the decided one among them: a value of any is as
    # good as the decided one (no note)
    types: frozenset[str] = field(default=frozenset(), init=False)

    @property
    def carries_json(self) -> bool:
        return "json" in self.tags

    def __post_init__(self) -> None:
        # decode's straight line reads it: a plain scalar taken as it comes (not JSON text
        # to parse, not the reversed token, a type Easee publishes)
        object.__setattr__(self, "fast", _PYTHON_TYPES.get(self.type) if (
            not self.carries_json and self.id != REVERSED_TOKEN_ID) else None)
        object.__setattr__(self, "labelled", bool(self.labels or self.flags))
        object.__setattr__(self, "types", frozenset(
            [self.type, *(claim.value for claim in self.claims if claim.what == "type")]))

    @property
    def listed(self) -> bool:
        """Whether the AMQP document lists it (else it is from Easee's wider list)."""
        return UNLISTED not in self.tags

    def label(self, value: object) -> str | None:
        """The enum label of a value (a number, or a String's letter), the flag names of a
        bit mask (and its reading as one code, where a source reads it so), or None."""
        if type(value) is str:
            return self.labels.get(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if self.labels:
            return self.labels.get(value)
        if self.flags:
            bits = describe_flags(value, self.flags)
            code = self.codes.get(value)
            if code is None:  # no source reads it as one code: the bits alone
                return bits
            return f"as one code: {code}" if bits is None else \
                f"as bits: {bits}; as one code: {code}"
        return None


def kind_key(serial: str) -> str:
    """What tells a device's kind in its serial: its first two letters (QP: an Equalizer).
    (decode's straight line spells the same inline, a call a message saved.)"""
    return serial[:2].upper()


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
    def __init__(self, entries: list[ObservationType], device: str = "charger",
                 others: Mapping[str, Callable[[], Catalogue]] | None = None) -> None:
        self.device = device  # the kind of device: "charger", "equalizer"
        # the lists of the other kinds, by the first two letters of their serials, each read
        # when first wanted (most streams carry chargers only)
        self._others: Mapping[str, Callable[[], Catalogue]] = others or {}
        self.others = frozenset(self._others)  # those letters
        self._by_id = {entry.id: entry for entry in entries}
        self._by_name = {entry.name.lower(): entry for entry in entries}
        self._by_text = {str(entry.id): entry for entry in entries}
        # The entry for an id as a routing key writes it (`109`): decode's fast path, so the
        # dictionary's own lookup (a method of ours would cost a call a message).
        self.by_route: Callable[[str], ObservationType | None] = self._by_text.get
        # decode's memo of the routing keys its fast path read (see decode.ROUTES_KEPT)
        self.routes: dict[str, tuple[str | None, ObservationType]] = {}

    def knows(self, text: str) -> bool:
        """Whether `text` is an id or a name of this list."""
        text = text.strip()
        if text.isascii() and text.isdecimal():
            return int(text) in self._by_id
        return text.lower() in self._by_name

    def of(self, serial: str | None) -> Catalogue:
        """The list of the device `serial` names: an Equalizer's for QP..., else this one."""
        other = self._others.get(kind_key(serial)) if serial and self._others else None
        return self if other is None else other()

    def kinds(self) -> Iterator[Catalogue]:
        """This list and those of the other kinds of device, each once."""
        yield self
        yield from dict.fromkeys(other() for other in self._others.values())

    def __iter__(self) -> Iterator[ObservationType]:
        return iter(sorted(self._by_id.values(), key=lambda entry: entry.id))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, observation_id: int) -> ObservationType | None:
        return self._by_id.get(observation_id)

    def resolve(self, text: str) -> int:
        """An observation id from a user's id or name (case-insensitive), either list; then
        the lists of the other kinds of device (an id is a number on every kind: `31` is a
        charger's IsEnabled and an Equalizer's Current_L1 alike)."""
        text = text.strip()
        for other in list(self.kinds())[1:]:
            if other.knows(text) and not self.knows(text):
                return other.resolve(text)
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
               wider: bool = False, device: str = "charger",
               tag: str | None = None) -> list[ObservationType]:
    entries = []
    for row in csv.DictReader(text.splitlines(), delimiter="\t"):
        enum = enums.get(row["id"], {})
        labels = enum.get("labels", {})
        flags = enum.get("flags", {})
        codes = enum.get("codes", {})
        assert isinstance(labels, dict) and isinstance(flags, dict) and isinstance(codes, dict)
        # the wider list leaves a type out where Easee publishes none: the value is kept as sent
        if row["type"] not in VALUE_TYPES and not (wider and row["type"] == ""):
            raise ValueError(f"catalogue: observation {row['id']} has unknown type {row['type']!r}")
        tags = tuple(name for name in (*row["tags"].split(","), tag) if name)
        entries.append(
            ObservationType(
                id=int(row["id"]),
                name=row["name"],
                type=row["type"],
                tags=(*tags, UNLISTED) if wider else tags,
                unit=row["unit"] or None,
                unit_inferred=row["unit_source"] == "inferred",
                description=row.get("description") or "",
                labels={_code(code, row["type"]): label for code, label in labels.items()},
                flags={int(bit): name for bit, name in flags.items()},
                roles=tuple(role for role in (row.get("roles") or "").split(",") if role),
                codes={int(code): name for code, name in codes.items()},
                claims=Claim.parse_all(row.get("sources") or ""),
                device=device,
            )
        )
    return entries


def _code(text: str, value_type: str) -> int | str:
    """An enum code as the values come: a number, or a String observation's letter."""
    return text if value_type == "String" else int(text)


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
    devices = json.loads((data / "devices.json").read_text(encoding="utf-8"))
    devices.pop("_about", None)
    others: dict[str, Callable[[], Catalogue]] = {}
    for kind, about in devices.items():
        others.update(dict.fromkeys(about["prefixes"], cache(partial(_kind, kind, about))))
    return Catalogue(listed + wider, others=others)


def _kind(kind: str, about: Mapping[str, Any]) -> Catalogue:
    """The list of another kind of device, its entries tagged with the kind."""
    from importlib.resources import files
    text = (files("easee_tail") / "data" / about["observations"]).read_text(encoding="utf-8")
    return Catalogue(_parse_tsv(text, about.get("enums", {}), device=kind, tag=kind), kind)
