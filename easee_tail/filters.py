"""Predicates built from --charger and --obs. Pure: a record in, keep or not out.

A record is judged on what it carries: an error record whose routing key named no charger
or observation id passes those filters rather than vanish unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from easee_tail.model import Record

Predicate = Callable[[Record], bool]


def build_filter(chargers: Iterable[str], observation_ids: Iterable[int]) -> Predicate | None:
    wanted_chargers = frozenset(c.upper() for c in chargers)
    wanted_ids = frozenset(observation_ids)
    if not wanted_chargers and not wanted_ids:
        return None

    def keep(record: Record) -> bool:
        if wanted_chargers and record.charger is not None \
                and record.charger.upper() not in wanted_chargers:
            return False
        if wanted_ids:
            if record.kind == "error":
                return record.id is None or record.id in wanted_ids
            return record.kind == "observation" and record.id in wanted_ids
        return True

    return keep


def split_values(values: Iterable[str]) -> list[str]:
    """Repeatable, comma-separated option values as one flat list."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
