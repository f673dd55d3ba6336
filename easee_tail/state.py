"""The fleet as it is now: per charger, the latest value of each observation that arrived.

Kept by the live table's store (live.py) from every batch, so the state view can be shown
(or switched to) at any moment; the clock is read once a batch, not per message. The
groups the state view shows are data (data/state_view.json), not code.

Only what the view draws is kept (name, value, label, unit, a short history of telemetry in
a compact array), never whole records: a fleet of 10,000 chargers fits in tens of MB.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

from easee_tail.catalogue import Catalogue
from easee_tail.format import value_text
from easee_tail.model import ErrorRecord, Record

HISTORY = 16  # telemetry values kept per observation for its sparkline


@dataclass(frozen=True)
class Group:
    name: str
    fields: tuple[tuple[int, str], ...]  # (observation id, short label), in display order


@dataclass(slots=True)
class Latest:
    """The newest value of one observation of one charger, and when it last changed."""

    name: str
    value: object
    label: str | None
    unit: str | None
    changed: float = 0.0  # monotonic; 0 until a second, different value arrives
    history: array[float] | None = None  # telemetry only: the last HISTORY values, oldest first


@dataclass(slots=True)
class ChargerState:
    serial: str
    count: int = 0
    errors: int = 0
    heard: float = 0.0  # monotonic, as of the batch that last carried one of its records
    latest: dict[int | str, Latest] = field(default_factory=dict)  # by id, or by kind name


_PLOTTABLE = 1 << 53  # integers a float holds exactly; beyond, a sparkline means nothing


class FleetState:
    def __init__(self, table: Catalogue) -> None:
        self._telemetry = {entry.id for entry in table if "telemetry" in entry.tags}
        self.chargers: dict[str, ChargerState] = {}
        self.failed = 0  # records a bug kept out of the view (none, one hopes)
        self._by_serial: list[ChargerState] = []  # sorted once a charger is new, not per redraw

    def by_serial(self) -> list[ChargerState]:
        """The chargers in the order of their serials."""
        if len(self._by_serial) != len(self.chargers):  # chargers are added, never removed
            self._by_serial = sorted(self.chargers.values(), key=lambda charger: charger.serial)
        return self._by_serial

    def take(self, records: Sequence[Record], now: float) -> None:
        """A batch of records, received at `now` (monotonic): one loop, locals only."""
        chargers, telemetry = self.chargers, self._telemetry
        for record in records:
            serial = record.charger or "?"
            charger = chargers.get(serial)
            if charger is None:
                charger = chargers[serial] = ChargerState(serial)
            charger.count += 1
            charger.heard = now
            if isinstance(record, ErrorRecord):
                charger.errors += 1
                continue
            try:
                key: int | str = record.id if record.id is not None else record.kind
                value = record.value
                if isinstance(value, (dict, list)):  # a session's JSON: kept as the text shown
                    value = value_text(value, None, None, 32)
                latest = charger.latest.get(key)
                if latest is None:
                    latest = charger.latest[key] = Latest(
                        record.name, value, record.label, record.unit)
                    if key in telemetry:
                        latest.history = array("f")
                elif latest.value != value:  # (the label and unit follow the value)
                    latest.changed = now
                    latest.value, latest.label, latest.unit = value, record.label, record.unit
                history = latest.history
                if history is not None and (
                        (type(value) is float and math.isfinite(value))
                        or (type(value) is int and -_PLOTTABLE < value < _PLOTTABLE)):
                    if len(history) == HISTORY:
                        del history[0]
                    history.append(value)
            except Exception:  # a bug must not end the stream: counted, shown in the header
                self.failed += 1


@cache
def groups(table: Catalogue) -> tuple[Group, ...]:
    """The state view's groups, from data/state_view.json, names resolved by the catalogue."""
    layout = json.loads((files("easee_tail") / "data" / "state_view.json").read_text("utf-8"))
    return tuple(
        Group(group["name"], tuple((table.resolve(name), label) for name, label in group["fields"]))
        for group in layout["groups"]
    )
