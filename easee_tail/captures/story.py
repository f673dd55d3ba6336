"""A charger's story: the changes of its state observations, in the order of its own clock.

Which observations make the story is data (data/story.json): op mode, reason for no current,
cable, enabled, output phase, current limits, errors, reboots, the cloud link, sessions. A
value that repeats is no change. Each change says how long the value it replaced held; a
change of op mode also says what the charger delivered meanwhile (energy from TotalPower
readings, held until the next, and the peak power). Telemetry itself is never listed.

`Story` takes one charger's records in order (live: as they come); `timeline` sorts a
capture's records per charger by the charger's own timestamps first.
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from importlib.resources import files
from itertools import compress
from sys import intern

from easee_tail.catalogue import Catalogue, kind_key
from easee_tail.format import value_text
from easee_tail.model import Batch, Observation, Record
from easee_tail.text import plural, visible
from easee_tail.times import parse_time, span


@dataclass(frozen=True)
class StoryData:
    """data/story.json with its names resolved to ids."""

    states: frozenset[int]
    power: int
    mode: int
    session_start: int
    session_end: int
    session_signed: int
    reason: int
    enabled: int
    cable: int
    error_code: int
    error_text: int
    reboot: int
    cloud: int
    cloud_reason: int
    tokens: frozenset[int]
    endings: dict[str, frozenset[int]]  # schedule, user, circuit: reason codes
    modes: dict[str, int]  # disconnected, charging, completed, error: op mode codes
    # the first letters of the serials of other kinds of device (an Equalizer's QP): their
    # numbers mean other things, and they tell no charger's story
    devices: frozenset[str] = frozenset()

    def is_charger(self, serial: str) -> bool:
        return not self.devices or kind_key(serial) not in self.devices

    @cached_property
    def sessions(self) -> frozenset[int]:
        """Observations each of which is an event: never "the same value again"."""
        return frozenset((self.session_start, self.session_end, self.session_signed))

    @cached_property
    def read(self) -> frozenset[int]:
        """Every observation a story or a session's rebuilding reads."""
        return self.states | self.tokens | {getattr(self, key) for key in _SINGLE}


_SINGLE = ("power", "mode", "session_start", "session_end", "session_signed", "reason",
           "enabled", "cable", "error_code", "error_text", "reboot", "cloud", "cloud_reason")


@cache
def story_data(catalogue: Catalogue) -> StoryData:
    data = json.loads((files("easee_tail") / "data" / "story.json").read_text("utf-8"))
    return StoryData(
        states=frozenset(catalogue.resolve(name) for name in data["states"]),
        tokens=frozenset(catalogue.resolve(name) for name in data["tokens"]),
        endings={kind: frozenset(codes) for kind, codes in data["endings"].items()},
        modes=dict(data["modes"]), devices=frozenset(catalogue.others),
        **{key: catalogue.resolve(data[key]) for key in _SINGLE})


def moment(record: Record | Heard) -> datetime:
    """The charger's own time; where it has none, when the cloud or easee-tail got it."""
    if isinstance(record, Observation | Heard) and record.timestamp is not None:
        return record.timestamp
    return record.arrival or record.received


@dataclass(slots=True)
class Heard:
    """What a story reads of an observation, and no more: a capture's story holds many (the
    rest of a record, its routing key, notes and tags, would be most of its memory)."""

    charger: str
    id: int
    name: str
    value: object
    unit: str | None
    label: str | None
    timestamp: datetime | None
    arrival: datetime | None
    received: datetime
    kind: str = "observation"

    @classmethod
    def of(cls, record: Observation) -> Heard:
        assert record.charger is not None and record.id is not None
        return cls(intern(record.charger), record.id, record.name, record.value, record.unit,
                   record.label, record.timestamp, record.arrival, record.received)


@dataclass(frozen=True)
class Change:
    charger: str
    at: datetime
    id: int
    name: str
    value: object
    label: str | None
    shown: str  # value, unit and label, for people
    before: str | None  # the value it replaced, shown; None for the first heard
    lasted: float | None  # seconds the replaced value held
    energy_kwh: float | None = None  # op mode: delivered while the replaced mode lasted
    peak_kw: float | None = None
    event: bool = False  # a session record: it replaces nothing
    arrival: datetime | None = None  # the record's other clocks, for a time window
    received: datetime | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "charger": self.charger, "time": self.at.isoformat().replace("+00:00", "Z"),
            "id": self.id, "name": self.name, "value": self.value, "label": self.label,
            "before": self.before, "lasted_s": None if self.lasted is None
            else round(self.lasted, 3), "energy_kwh": self.energy_kwh, "peak_kw": self.peak_kw,
        }


class Meter:
    """Energy from TotalPower readings, each held until the next (or until `advance`), and
    the peak power, both since the last `restart`. A fleet's stream is one reading in
    seven: plain attributes, no tuple a reading."""

    __slots__ = ("_power", "_since", "kwh", "peak")

    def __init__(self) -> None:
        self._power = 0.0  # the reading that holds (kW) …
        self._since: datetime | None = None  # … since then; None until the first
        self.kwh = 0.0
        self.peak: float | None = None

    def reading(self, value: object, at: datetime) -> None:
        self.advance(at)
        if (type(value) is float or (isinstance(value, (int, float))
                and not isinstance(value, bool))) and value == value:  # not NaN
            power = self._power = float(value)
            self._since = at
            if power > 0 and (self.peak is None or power > self.peak):
                self.peak = power

    def advance(self, at: datetime) -> None:
        """The energy of the reading that holds, up to `at`."""
        since = self._since
        if since is not None:
            seconds = (at - since).total_seconds()
            if seconds > 0:
                self.kwh += self._power * seconds / 3600
            self._since = at

    def restart(self) -> None:
        self.kwh, self.peak = 0.0, None


class Story:
    """One charger's changes, from its records fed in the order of its clock."""

    def __init__(self, data: StoryData) -> None:
        self._data = data
        # id: (value, label, unit, since as epoch seconds): small, a fleet keeps many
        self._last: dict[int, tuple[object, str | None, str | None, float]] = {}
        self._meter = Meter()  # since the op mode last changed

    def power(self, value: object, at: datetime) -> None:
        """A TotalPower reading (what `feed` does with one)."""
        self._meter.reading(value, at)

    def baseline(self, record: Observation) -> None:
        """An old value the cloud sent again (stale, repeated): never a change; only what
        was known before, where nothing was (so that the next change says what it
        replaced). An event (a session) or a power reading sent again is left out."""
        data = self._data
        if record.id in data.states and record.id not in data.sessions \
                and record.id not in self._last and record.id is not None:
            self._last[record.id] = (record.value, record.label, record.unit,
                                     moment(record).timestamp())

    def feed(self, record: Record | Heard) -> Change | None:
        """The change this record makes, if any."""
        if not isinstance(record, Observation | Heard) or record.kind != "observation" \
                or record.id is None or record.charger is None:
            return None
        data = self._data
        if record.id == data.power:
            self._meter.reading(record.value, moment(record))
            return None
        if record.id not in data.states:
            return None
        at = moment(record)
        value = record.value
        event = record.id in data.sessions
        previous = None if event else self._last.get(record.id)
        if previous is not None and previous[0] == value:
            return None
        shown = session_text(record, data) if event else \
            value_text(record.value, record.label, record.unit) or "(empty)"
        if not event:  # an event replaces nothing: not kept
            self._last[record.id] = (value, record.label, record.unit, at.timestamp())
        energy = peak = None
        if record.id == data.mode:
            meter = self._meter
            meter.advance(at)
            if previous is not None and (meter.kwh or meter.peak):
                energy, peak = round(meter.kwh, 4), meter.peak
            meter.restart()
        before = None if previous is None else \
            value_text(previous[0], previous[1], previous[2]) or "(empty)"
        return Change(
            record.charger, at, record.id, record.name, value, record.label, shown, before,
            None if previous is None else at.timestamp() - previous[3], energy, peak,
            event, record.arrival, record.received)



def field(value: object, name: str) -> object:
    """A key of a session object, PascalCase or camelCase; None when absent."""
    if not isinstance(value, dict):
        return None
    return value.get(name, value.get(name[:1].lower() + name[1:]))


def session_text(record: Observation | Heard, data: StoryData) -> str:
    """A session observation for people: `session 12 started at meter 3418.1 kWh`."""
    value = record.value
    number = field(value, "Id")
    name = f"session {number}" if isinstance(number, int | str) else "a session"
    if record.id == data.session_start:
        meter = field(value, "MeterValue")
        return name + " started" + (f" at meter {meter:g} kWh"
                                    if isinstance(meter, int | float) else "")
    if record.id == data.session_end:
        energy = field(value, "EnergyKwh")
        start, stop = parse_time(field(value, "Start")), parse_time(field(value, "Stop"))
        text = name + " ended"
        if isinstance(energy, int | float):
            text += f": {energy:.2f} kWh"
        if start is not None and stop is not None:
            text += f" in {span((stop - start).total_seconds())}"
        return text
    return name + " signed"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Charger:
    """One charger's part of a capture as a story reads it: its state records (`Heard`),
    and its TotalPower readings packed in arrays (time in whole microseconds, value; most of
    what a story reads is power, at 24 bytes a reading rather than hundreds), each with its
    place in the file, so that both go back into one order as a stable sort by the
    charger's clock gives it."""

    __slots__ = ("heard", "order", "power", "power_at", "power_order")

    def __init__(self) -> None:
        self.heard: list[Heard] = []
        self.order = array("q")  # each heard record's place in the file
        self.power_at = array("q")
        self.power = array("d")  # NaN for a value that is no number: it still advances
        self.power_order = array("q")

    def add(self, record: Observation, place: int, power: int) -> None:
        if record.id == power:
            self.power_at.append((moment(record) - _EPOCH) // _MICROSECOND)
            self.power.append(_number(record.value))
            self.power_order.append(place)
        else:
            self.heard.append(Heard.of(record))
            self.order.append(place)

    def sort(self) -> None:
        """Both in the order of the charger's clock, ties in file order; a record with the
        same id, value and Timestamp as one before it is left out (an old value the cloud
        sent again after a restart, say, or a capture read twice): it changes nothing, and
        a session's record would count the session twice."""
        heard, order = self.heard, self.order
        ranks = sorted(range(len(heard)), key=lambda index: (moment(heard[index]), order[index]))
        seen: set[tuple[int, datetime | None, str]] = set()
        kept = []
        for index in ranks:
            record = heard[index]
            same = (record.id, record.timestamp, repr(record.value))
            if record.timestamp is None or same not in seen:
                seen.add(same)
                kept.append(index)
        self.heard = [heard[index] for index in kept]
        self.order = array("q", (order[index] for index in kept))
        at, power, places = self.power_at, self.power, self.power_order
        ranks = sorted(range(len(at)), key=lambda index: (at[index], places[index]))
        self.power_at = array("q", (at[index] for index in ranks))
        self.power = array("d", (power[index] for index in ranks))
        self.power_order = array("q", (places[index] for index in ranks))

    def events(self) -> Iterator[Heard | tuple[float, datetime]]:
        """The records and the power readings (value, at), merged in the sorted order."""
        heard, order = self.heard, self.order
        at, power, places = self.power_at, self.power, self.power_order
        state, reading = 0, 0
        while state < len(heard) or reading < len(at):
            if reading >= len(at) or (state < len(heard) and (
                    moment(heard[state]), order[state]) <= (_time(at[reading]), places[reading])):
                yield heard[state]
                state += 1
            else:
                yield power[reading], _time(at[reading])
                reading += 1


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            pass
    return math.nan


def _time(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)


Chargers = dict[str, Charger]


def kept(records: Iterable[Record], data: StoryData,
         keep: Callable[[Record], bool] | None = None) -> Chargers:
    """The observations a story reads (`data.read`) that `keep` keeps, per charger, in the
    order read. The others are let go as they are read: a capture is mostly telemetry no
    story tells, and only what is kept is held in memory."""
    chargers: Chargers = {}
    read, power = data.read, data.power
    for place, record in enumerate(records):
        if record.id in read and record.charger is not None \
                and isinstance(record, Observation) and record.kind == "observation" \
                and data.is_charger(record.charger) and (keep is None or keep(record)):
            charger = chargers.get(record.charger)
            if charger is None:
                charger = chargers[record.charger] = Charger()
            charger.add(record, place, power)
    return chargers


def in_order(chargers: Chargers) -> Chargers:
    """Each charger's records in the order of its clock (stable), the chargers by serial."""
    for charger in chargers.values():
        charger.sort()
    return dict(sorted(chargers.items()))


def timeline(chargers: Chargers, data: StoryData, listed: Sequence[int] = ()) -> list[Change]:
    """The changes of every charger (`in_order`), a charger at a time; `listed`: only
    these ids."""
    changes = []
    for charger in chargers.values():
        story = Story(data)
        for event in charger.events():
            if isinstance(event, tuple):
                story.power(*event)
                continue
            change = story.feed(event)
            if change is not None and (not listed or change.id in listed):
                changes.append(change)
    return changes


def change_line(change: Change, width: int = 22) -> str:
    """`2026-11-26 12:00:01  ChargerOpMode  4 Completed  (was 3 Charging for 1h 2m: 7.3 kWh,
    peak 7.4 kW)`, in local time, with what came from outside made visible."""
    local = change.at.astimezone()
    line = f"  {local:%Y-%m-%d %H:%M:%S}  {visible(change.name):<{width}} {visible(change.shown)}"
    context = was(change)
    return f"{line}  ({context})" if context else line


def was(change: Change) -> str:
    """What the change replaced and how long it held ("" for a session record)."""
    if change.event:
        return ""
    if change.before is None:
        return "first heard"
    text = f"was {visible(change.before)}"
    if change.lasted is not None:
        text += f" for {span(change.lasted)}"
    if (change.energy_kwh or 0) >= 0.005 or change.peak_kw:  # a moment's power is nothing
        text += f": {change.energy_kwh or 0:.2f} kWh"
        if change.peak_kw:
            text += f", peak {change.peak_kw:g} kW"
    return text


def timeline_text(changes: Sequence[Change]) -> str:
    """Per charger a heading, then its changes; "" when there are none."""
    counts = Counter(change.charger for change in changes)
    width = max((len(visible(change.name)) for change in changes), default=0)
    out: list[str] = []
    charger = None
    for change in changes:
        if change.charger != charger:
            charger = change.charger
            if out:
                out.append("")
            out.append(f"{visible(charger)}  {plural(counts[charger], 'change')}")
        out.append(change_line(change, width))
    return "\n".join(out)


class LiveStory:
    """The table's timeline view: each charger's story as records come (the order they
    arrive in), the latest changes kept; fed by the live table's store (live.py)."""

    KEPT = 500

    def __init__(self, data: StoryData) -> None:
        self._data = data
        self._stories: dict[str, Story] = {}
        self.changes: deque[Change] = deque(maxlen=self.KEPT)
        self._read = data.read  # a story reads no other observation
        self.failed = 0  # records a bug kept out of their story (none, one hopes)

    def take(self, batch: Batch) -> None:
        """A batch of records, in the order they came."""
        stories = self._stories
        power = self._data.power
        # the records of the observations a story reads, picked in C (most are telemetry)
        for record in compress(batch.records, map(self._read.__contains__, batch.ids)):
            charger = record.charger
            story = stories.get(charger)  # type: ignore[arg-type]  # None: never a key
            if story is None:  # a serial not seen before (or none, or another device's)
                if charger is None or not self._data.is_charger(charger):
                    continue
                story = stories[charger] = Story(self._data)
            try:
                if type(record) is Observation and record.kind == "observation":
                    if record.stale or record.repeated:  # old news: no change
                        story.baseline(record)
                        continue
                    if record.id == power:  # what `feed` does, the short way
                        story.power(record.value, record.timestamp or record.arrival
                                    or record.received)  # its moment()
                        continue
                change = story.feed(record)
            except Exception:  # a bug must not end the stream: counted, shown in the header
                self.failed += 1
                continue
            if change is not None:
                self.changes.append(change)

