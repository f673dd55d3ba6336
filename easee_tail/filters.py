"""Predicates built from --charger, --obs, --tag and --where. Pure: a record in, keep or not.

A record is judged on what it carries: an error record whose routing key named no charger
or observation id passes those filters rather than vanish unseen.

Chargers are shell-style globs, case-insensitive (`EH*`); a value starting with `!`
excludes, for chargers, observations and tags alike. A --where condition is one small
comparison on a JSON line field: `value != 0`, `latency_ms > 1000`, `label ~ error`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from easee_tail.model import Record

Predicate = Callable[[Record], bool]
# --time-field's words: the record field each judges
TIME_FIELDS = {"device": "timestamp", "arrival": "arrival", "received": "received"}

_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(==|!=|<=|>=|<|>|~|=)\s*(.*?)\s*$")


def split_values(values: Iterable[str]) -> list[str]:
    """Repeatable, comma-separated option values as one flat list."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def split_negated(values: Iterable[str]) -> tuple[list[str], list[str]]:
    """(wanted, excluded): a value starting with ! excludes."""
    wanted, excluded = [], []
    for value in split_values(values):
        if value.startswith("!"):
            if value[1:].strip():
                excluded.append(value[1:].strip())
        else:
            wanted.append(value)
    return wanted, excluded


@dataclass(frozen=True)
class Condition:
    """`field op literal`; numbers compare as numbers, anything else as text (`~`: contains,
    case-insensitive); `null` is a missing value."""

    field: str
    op: str
    literal: str

    @classmethod
    def parse(cls, text: str, fields: Sequence[str]) -> Condition:
        match = _CONDITION.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not FIELD OP VALUE (ops: == != < <= > >= ~)")
        field, op, literal = match.groups()
        if field not in fields:
            raise ValueError(f"no field named {field!r}; fields: {', '.join(fields)}")
        if len(literal) >= 2 and literal[0] == literal[-1] and literal[0] in "'\"":
            literal = literal[1:-1]
        return cls(field, "==" if op == "=" else op, literal)

    def __call__(self, record: Record) -> bool:
        value = getattr(record, self.field, None)
        if self.literal == "null":
            return (value is None) == (self.op == "==") if self.op in ("==", "!=") else False
        number = _number(self.literal)
        mine = _number(value)
        if number is not None and mine is not None:
            return _compare(mine, self.op, number)
        if value is None:
            return self.op == "!="
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if self.op == "~":
            return self.literal.lower() in text.lower()
        if self.op in ("==", "!="):
            return (text == self.literal) == (self.op == "==")
        return False  # an order between a number and text means nothing


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _compare(left: float, op: str, right: float) -> bool:
    return {"==": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
            ">": left > right, ">=": left >= right, "~": left == right}[op]


@dataclass(frozen=True)
class FilterSpec:
    chargers: tuple[str, ...] = ()  # globs
    not_chargers: tuple[str, ...] = ()
    observations: tuple[int, ...] = ()
    not_observations: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    not_tags: tuple[str, ...] = ()
    where: tuple[Condition, ...] = ()
    since: datetime | None = None  # judged on `time_field`; a record without it is kept
    until: datetime | None = None
    time_field: str = "timestamp"  # the charger's own time; or "arrival", "received"

    def describe(self, entry: Callable[[int], object | None] = lambda _id: None) -> str:
        """What is filtered, for people ("" when nothing is); `entry` names observation ids."""
        def named(item: str | int) -> str:
            found = entry(item) if isinstance(item, int) else None
            return str(getattr(found, "name", item))

        parts = []
        for name, wanted, excluded in (
                ("charger", self.chargers, self.not_chargers),
                ("obs", self.observations, self.not_observations),
                ("tag", self.tags, self.not_tags)):
            shown = [named(item) for item in wanted] + [f"!{named(item)}" for item in excluded]
            if shown:
                parts.append(f"{name} {','.join(shown)}")
        parts += [f"where {c.field} {c.op} {c.literal}" for c in self.where]
        if self.since is not None:
            parts.append(f"{self.time_field} since {self.since.isoformat()}")
        if self.until is not None:
            parts.append(f"{self.time_field} until {self.until.isoformat()}")
        return "; ".join(parts)


_SERIAL = re.compile(r"[A-Z]{2}[A-Z0-9]{6}")


def could_be_serial(pattern: str) -> bool:
    """Whether a --charger value can match an Easee serial: two letters, then six letters or
    digits (EH123456, ECV8AZ4K). A glob fails only when nothing it spells could fit: a
    character that is no letter or digit, or a length that cannot be eight."""
    upper = pattern.upper()
    if not _is_glob(upper):
        return _SERIAL.fullmatch(upper) is not None
    spelled = re.sub(r"\[[^\]]*\]", "?", upper)  # a set stands for one character
    literal = spelled.replace("*", "").replace("?", "")
    length = len(spelled.replace("*", ""))
    if length > 8 or ("*" not in spelled and length < 8):
        return False
    return not literal or literal.isalnum()


def build_filter(spec: FilterSpec) -> Predicate | None:
    """The predicate, or None when nothing is filtered (the loop then skips the call)."""
    wanted_chargers = _matcher(spec.chargers)
    unwanted_chargers = _matcher(spec.not_chargers)
    wanted_ids = frozenset(spec.observations)
    unwanted_ids = frozenset(spec.not_observations)
    tags, not_tags, where = frozenset(spec.tags), frozenset(spec.not_tags), spec.where
    since, until, time_field = spec.since, spec.until, spec.time_field
    if not (wanted_chargers or unwanted_chargers or wanted_ids or unwanted_ids or tags
            or not_tags or where or since or until):
        return None

    def keep(record: Record) -> bool:
        charger = record.charger
        if charger is not None:
            if wanted_chargers is not None and not wanted_chargers(charger):
                return False
            if unwanted_chargers is not None and unwanted_chargers(charger):
                return False
        if record.kind == "error":
            if record.id is not None and ((wanted_ids and record.id not in wanted_ids)
                                          or record.id in unwanted_ids):
                return False
        else:
            if wanted_ids and (record.kind != "observation" or record.id not in wanted_ids):
                return False
            if unwanted_ids and record.id in unwanted_ids:
                return False
            if tags and tags.isdisjoint(record.tags):
                return False
            if not_tags and not not_tags.isdisjoint(record.tags):
                return False
        if since is not None or until is not None:
            moment = getattr(record, time_field, None)
            if moment is not None and ((since is not None and moment < since)
                                       or (until is not None and moment > until)):
                return False
        return not where or all(condition(record) for condition in where)

    return keep


def _matcher(patterns: Iterable[str]) -> Callable[[str], bool] | None:
    """Case-insensitive: exact serials by set membership, globs by fnmatch."""
    exact = frozenset(p.upper() for p in patterns if not _is_glob(p))
    globs = [re.compile(fnmatch.translate(p.upper())) for p in patterns if _is_glob(p)]
    if not exact and not globs:
        return None

    def matches(charger: str) -> bool:
        upper = charger.upper()
        return upper in exact or (bool(globs) and any(glob.match(upper) for glob in globs))

    return matches


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")
