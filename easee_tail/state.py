"""The fleet as it is now: per charger, the latest value of each observation that arrived.

Kept by the live table's store (live.py) from every batch, so the state view can be shown
(or switched to) at any moment; the clock is read once a batch, not per message. The
groups the state view shows are data (data/state_view.json), not code.

Only what the view draws is kept (name, value, label, unit, a short history of telemetry in
a compact array), never whole records: a fleet of 10,000 chargers fits in tens of MB. The
values of a batch wait in a window, the newest per charger and observation, which is folded
in five times a second (a redraw's period): a backlog drained at tens of thousands of
messages a second sends each observation of a charger many times in between, and only the
newest is looked at. So a sparkline's history and a value's last change are as of those
foldings: the same as per message on a live stream, where a charger sends an observation at
most every few seconds.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from itertools import repeat
from operator import attrgetter

from easee_tail.catalogue import Catalogue
from easee_tail.format import value_text
from easee_tail.model import Batch, ErrorRecord, Observation

HISTORY = 16  # telemetry values kept per observation for its sparkline (one per settle)
SETTLE_EVERY = 0.2  # seconds between two foldings of the newest values: a redraw's period
SETTLE_SIZE = 50_000  # (serial, id) pairs waiting that fold them in at once (memory)


@dataclass(frozen=True)
class Group:
    name: str
    # (observation id, short label, its catalogue name), in display order
    fields: tuple[tuple[int, str, str], ...]


@dataclass(slots=True)
class Latest:
    """The newest value of one observation of one charger, and when it last changed."""

    name: str
    value: object
    label: str | None
    unit: str | None
    changed: float = 0.0  # monotonic; 0 until a second, different value arrives
    history: array[float] | None = None  # telemetry only: the last HISTORY values, oldest first


_shown = attrgetter("name", "value", "label", "unit")  # a record's (name, value, label, unit)
_PLOTTABLE = 1 << 53  # integers a float holds exactly; beyond, a sparkline means nothing


class FleetState:
    """Per charger: how many messages, how many unreadable, when last heard (each kept per
    batch in C) and the latest value of each observation (a lookup per record)."""

    def __init__(self, table: Catalogue, counts: Counter[str] | None = None) -> None:
        self._telemetry = {entry.id for entry in table if "telemetry" in entry.tags}
        # messages, by serial ("?": none named): the run's Stats.per_charger when given (one
        # count, kept by the stats), else counted here
        self._counting = counts is None
        self.counts: Counter[str] = Counter() if counts is None else counts
        self.errors: Counter[str] = Counter()  # of them unreadable
        self.heard: dict[str, float] = {}  # monotonic, as of the batch that last carried one
        self.latest: dict[str, dict[int | str, Latest]] = {}  # by serial, then id or kind
        self.failed = 0  # records a bug kept out of the view (none, one hopes)
        self._by_serial: list[str] = []  # sorted once a charger is new, not per redraw
        # the newest (name, value, label, unit) of each (serial, id) since the last `settle`:
        # the values, not the records (kept for up to SETTLE_EVERY, thousands of records
        # held in a backlog made every stage of the process slower, in the CPU's caches)
        self._window: dict[tuple[str, int | str], tuple[str, object, str | None, str | None]] \
            = {}
        self._settle_at = 0.0  # monotonic: the first batch is folded in at once

    def __len__(self) -> int:
        return len(self.latest)

    def by_serial(self) -> list[str]:
        """The serials in order, the newest values folded in: what a view reads first."""
        if self._window:
            self.settle(time.monotonic())
        if len(self._by_serial) != len(self.latest):  # chargers are added, never removed
            self._by_serial = sorted(self.latest)
        return self._by_serial

    def take(self, batch: Batch, now: float) -> None:
        """A batch of records, received at `now` (monotonic). Counted at once; their values
        wait in a window that `settle` folds in (at most SETTLE_EVERY seconds later)."""
        records = batch.records
        serials: list[str] = batch.serials  # type: ignore[assignment]  # None is replaced
        if None in serials:  # a routing key without a serial
            serials = [serial or "?" for serial in serials]
        if self._counting:
            self.counts.update(serials)
        self.heard.update(zip(serials, repeat(now)))
        latest = self.latest
        if len(self.heard) != len(latest):  # new chargers
            for serial in self.heard.keys() - latest.keys():
                latest[serial] = {}
        keys = batch.ids
        observations: Sequence[Observation]
        pairs: Iterable[tuple[str, int | str]]
        if batch.errors or None in keys:  # rare: the slow way
            self.errors.update(serial for serial, record in zip(serials, records, strict=True)
                               if isinstance(record, ErrorRecord))
            pairs = [(serial, record.kind if record.id is None else record.id)
                     for serial, record in zip(serials, records, strict=True)
                     if not isinstance(record, ErrorRecord)]
            observations = [record for record in records if isinstance(record, Observation)]
        else:
            pairs = zip(serials, keys, strict=True)  # type: ignore[arg-type]  # no None
            observations = records  # type: ignore[assignment]  # no error record among them
        # the newest of each (serial, id), in C: a busy stream sends the same observation of
        # a charger many times between two redraws
        self._window.update(zip(pairs, map(_shown, observations), strict=True))
        if now >= self._settle_at or len(self._window) >= SETTLE_SIZE:
            self.settle(now)

    def settle(self, now: float) -> None:
        """Fold the window into the latest values (when a view is about to read them, or the
        window is due)."""
        self._settle_at = now + SETTLE_EVERY
        window, self._window = self._window, {}
        latest = self.latest
        telemetry = self._telemetry
        for (serial, key), (name, value, label, unit) in window.items():
            try:
                if type(value) is dict or type(value) is list:  # a session's JSON: its text
                    value = value_text(value, None, None, 32)
                values = latest[serial]
                known = values.get(key)
                if known is None:
                    known = values[key] = Latest(name, value, label, unit)
                    if key in telemetry:
                        known.history = array("f")
                elif known.value != value:  # (the label and unit follow the value)
                    known.changed = now
                    known.value, known.label, known.unit = value, label, unit
                history = known.history
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
    return tuple(Group(group["name"], tuple(_field(table, name, label)
                                            for name, label in group["fields"]))
                 for group in layout["groups"])


def _field(table: Catalogue, name: str, label: str) -> tuple[int, str, str]:
    number = table.resolve(name)
    entry = table.get(number)
    assert entry is not None  # resolved: it is there
    return number, label, entry.name
