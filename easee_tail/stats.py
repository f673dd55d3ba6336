"""Running statistics: counts, rate and latency percentiles. A sink like the others.

With filters on, a Tally (kept by the loop) counts what was received and what the filters
removed, so that the header, the exit summary and the stats records say how much was
consumed without being shown, and FilterNotice says so on stderr when nothing matches.
"""

from __future__ import annotations

import json
import math
import time
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import TextIO

from easee_tail.model import Batch, ErrorRecord, Record
from easee_tail.sinks import Watcher
from easee_tail.times import CLOCK_SKEW_MS

WINDOW = 2048  # latencies kept for the live percentiles
RATE_SPAN = 5.0  # seconds the rate is averaged over
# Upper bounds (ms, inclusive, as Prometheus's `le`) of the latency histogram's buckets: the
# first holds 0 and the negative (clocks that disagree), the last what is above the last edge.
HISTOGRAM_EDGES = (0, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000,
                   120_000, 300_000, 600_000)


@dataclass
class Tally:
    """What the loop took from the source, and how much of it the filters removed."""

    filters: str  # the active filters, for people
    removes: bool = False  # what is filtered out is acknowledged, so it leaves a real queue
    taken: int = 0  # deliveries the loop took from the source
    removed: int = 0  # of those, the ones the filters removed
    # lines of a capture that its reader passed over without parsing (no filter could keep
    # them): received and filtered out too
    passed_over: Callable[[], int] = lambda: 0

    @property
    def received(self) -> int:
        return self.taken + self.passed_over()

    @property
    def filtered(self) -> int:
        return self.removed + self.passed_over()

    @property
    def fate(self) -> str:
        """What became of a message the filters removed."""
        return "acknowledged" if self.removes else "skipped"

    @property
    def shown(self) -> int:
        return self.received - self.filtered


class Stats:
    """Counts and latencies of what was written. A sink (`write` keeps what is counted of
    the record, not the record; a batch is counted on `flush`), or fed whole batches by the
    live table's store (`take`): per batch, in C (Counter, map, bisect) but for batches with
    error records."""

    def __init__(self, tally: Tally | None = None, latency_bound: float | None = None) -> None:
        self.tally = tally  # None when nothing is filtered
        self.started = time.monotonic()
        self.total = 0
        self.errors = 0
        self.redelivered = 0
        self.stale = 0  # old values the cloud sent again (decode.py marks them)
        self.repeated = 0
        self.per_charger: Counter[str] = Counter()
        self.per_observation: Counter[str] = Counter()
        self.histogram = [0] * (len(HISTOGRAM_EDGES) + 1)  # exact counts, every message
        self.recent_latencies: deque[float] = deque(maxlen=WINDOW)
        self.negative_latencies = 0
        self.skewed = 0  # ArrivalTime more than CLOCK_SKEW ahead: not counted as latency
        self.first_skew: tuple[str, float] | None = None  # (charger, ms ahead), the first
        self.latency_sum = 0.0  # ms, of the latencies counted
        self.latency_count = 0
        # every latency counted, by band (see _band), for the run's percentiles
        self._bands: Counter[int] = Counter()
        self._latency_max: float | None = None  # ms, exact
        self._latency_min: float | None = None
        self._snapshots: deque[tuple[float, int]] = deque()
        self.last_received: float | None = None  # monotonic, as of the last batch written
        # --alert-latency: per second of the last minute, (second, latencies, over the bound)
        self.latency_bound = latency_bound  # ms
        self.minute: deque[list[int]] = deque()
        # as a sink: what is counted of each record since the last flush, not the record (a
        # batch of records held to the flush made every stage of the process slower)
        self._pending: list[tuple[str | None, str | None, float | None, bool, bool, bool]] = []

    def write(self, record: Record) -> None:
        try:
            self._pending.append(_COUNTED(record))
        except AttributeError:  # an error record: no name, no flags
            self._pending.append((record.charger, None, record.latency_ms, False, False,
                                  record.redelivered))

    def flush(self) -> None:
        pending = self._pending
        if pending:  # once a batch rather than once a message: a clock read is not free
            serials, names, latencies, stale, repeated, redelivered = zip(*pending, strict=True)
            self._count(len(pending), serials, names, latencies, stale, repeated, redelivered,
                        time.monotonic())
            pending.clear()

    def take(self, batch: Batch, now: float) -> None:
        """Count a batch of records, received at `now` (monotonic)."""
        records = batch.records
        if not records:
            return
        names: Iterable[str | None]
        if batch.errors:  # rare: an error record has no name
            names = [None if isinstance(record, ErrorRecord) else record.name
                     for record in records]
            observations = [record for record in records if not isinstance(record, ErrorRecord)]
        else:  # the usual batch, counted in C
            names = map(_name, records)
            observations = records  # type: ignore[assignment]  # no error record among them
        self._count(len(records), batch.serials, names, list(map(_latency, records)),
                    map(_stale, observations), map(_repeated, observations),
                    map(_redelivered, records), now)

    def _count(self, size: int, serials: Sequence[str | None], names: Iterable[str | None],
               latencies: Sequence[float | None], stale: Iterable[bool],
               repeated: Iterable[bool], redelivered: Iterable[bool], now: float) -> None:
        """A batch, as columns: one item a record (an error record's name is None)."""
        self.total += size
        self.last_received = now
        per_charger = self.per_charger
        per_charger.update(serials)  # type: ignore[arg-type]  # None: just below
        if None in per_charger:  # a routing key without a serial
            per_charger["?"] += per_charger.pop(None)  # type: ignore[call-overload]
        per_observation = self.per_observation
        per_observation.update(names)  # type: ignore[arg-type]  # None: just below
        if None in per_observation:  # error records, counted as unreadable
            errors = per_observation.pop(None)  # type: ignore[call-overload]
            self.errors += errors
            per_observation[UNREADABLE] += errors
        self.stale += sum(stale)
        self.repeated += sum(repeated)
        self.redelivered += sum(redelivered)
        counted = [latency for latency in latencies if latency is not None]
        if counted:
            self._latencies(counted, serials, latencies, now)

    def _latencies(self, latencies: list[float], serials: Sequence[str | None],
                   every: Sequence[float | None], now: float) -> None:
        """`latencies` counted (none is None); `every` with `serials`, one a record."""
        # the batch in order (a sort in C) answers each question with a bisection
        ordered = sorted(latencies)
        if ordered[0] < 0:
            self.negative_latencies += bisect_left(ordered, 0.0)
            skewed = bisect_left(ordered, -CLOCK_SKEW_MS)
            if skewed:  # the local clock is behind: not latency
                if self.first_skew is None:
                    serial, ahead = next(
                        (serial, latency) for serial, latency in zip(serials, every, strict=True)
                        if latency is not None and latency < -CLOCK_SKEW_MS)
                    self.first_skew = (serial or "?", -(ahead or 0.0))
                self.skewed += skewed
                del ordered[:skewed]
                latencies = [latency for latency in latencies if latency >= -CLOCK_SKEW_MS]
                if not latencies:
                    return
        self.recent_latencies.extend(latencies)
        histogram = self.histogram
        below = 0
        for bucket, edge in enumerate(HISTOGRAM_EDGES):
            upto = bisect_right(ordered, edge, below)
            histogram[bucket] += upto - below
            below = upto
        histogram[-1] += len(ordered) - below
        self.latency_sum += sum(ordered)
        self.latency_count += len(latencies)
        if self._latency_max is None or ordered[-1] > self._latency_max:
            self._latency_max = ordered[-1]
        if self._latency_min is None or ordered[0] < self._latency_min:
            self._latency_min = ordered[0]
        self._count_bands(ordered)
        if self.latency_bound is not None:
            second = int(now)
            minute = self.minute
            if not minute or minute[-1][0] != second:
                minute.append([second, 0, 0])
                while minute[0][0] <= second - 60:
                    minute.popleft()
            minute[-1][1] += len(ordered)
            minute[-1][2] += len(ordered) - bisect_right(ordered, self.latency_bound)

    def last_minute(self, now: float) -> tuple[int, int]:
        """(latencies, of them over --alert-latency's bound) in the minute before `now`."""
        seconds = [entry for entry in self.minute if entry[0] > now - 60]
        return sum(entry[1] for entry in seconds), sum(entry[2] for entry in seconds)

    def _count_bands(self, ordered: list[float]) -> None:
        """Count a batch's latencies (in order) by band: a band's values are found by one
        bisection, so a batch costs a step per band it spans, not one per value."""
        bands = self._bands
        start, size = 0, len(ordered)
        while start < size:
            band = _band(ordered[start])
            if band >= 0:
                end = bisect_left(ordered, BAND_FLOOR_MS * BAND ** (band + 1), start)
            elif band == -1:
                end = bisect_left(ordered, BAND_FLOOR_MS, start)
            else:
                end = bisect_right(ordered, -BAND_FLOOR_MS * BAND ** (-2 - band), start)
            end = max(end, start + 1)  # an edge rounded the other way: this value at least
            bands[band] += end - start
            start = end

    def tick(self, now: float) -> None:
        self._snapshots.append((now, self.total))
        while len(self._snapshots) > 2 and now - self._snapshots[1][0] >= RATE_SPAN:
            self._snapshots.popleft()

    def close(self) -> None:
        pass

    @property
    def rate(self) -> float:
        """Messages per second over the last few seconds."""
        if len(self._snapshots) < 2:
            return 0.0
        (first_time, first_total), (last_time, last_total) = self._snapshots[0], self._snapshots[-1]
        span = last_time - first_time
        return (last_total - first_total) / span if span > 0 else 0.0

    def live_percentiles(self) -> dict[str, float] | None:
        return percentiles(self.recent_latencies)

    def run_percentiles(self) -> dict[str, float] | None:
        """p50, p95 and p99 of every latency of the run, each within half a percent (the
        middle of its band, inside the run's range), and the exact max."""
        if self._latency_max is None or self._latency_min is None:
            return None
        bands = sorted(self._bands.items())
        total = sum(count for _, count in bands)
        found: dict[str, float] = {}
        for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
            rank, seen = min(total - 1, int(fraction * total)), 0
            for band, count in bands:
                seen += count
                if seen > rank:
                    found[name] = min(max(_middle(band), self._latency_min), self._latency_max)
                    break
        found["max"] = self._latency_max
        return found


UNREADABLE = "(unreadable)"  # the per-observation count of error records
_name = attrgetter("name")
_redelivered = attrgetter("redelivered")
_stale = attrgetter("stale")
_repeated = attrgetter("repeated")
_latency = attrgetter("latency_ms")
# what Stats counts of a record, as a sink (an error record has no name or flags)
_COUNTED = attrgetter("charger", "name", "latency_ms", "stale", "repeated", "redelivered")


# The run's percentiles count every latency in a band 1 % wide (log-spaced, as HDR
# histograms do): exact counts, each value within half a percent of its band's middle.
BAND = 1.01
BAND_FLOOR_MS = 0.01  # a latency nearer zero than this is in the band "about zero"
_LOG_BAND = math.log(BAND)


def _band(latency_ms: float) -> int:
    """k >= 0 from BAND_FLOOR_MS * BAND**k up; -1 about zero; -2 - k the negative mirror."""
    size = abs(latency_ms)
    if size < BAND_FLOOR_MS:
        return -1
    band = int(math.log(size / BAND_FLOOR_MS) / _LOG_BAND)
    return band if latency_ms > 0 else -2 - band


def _middle(band: int) -> float:
    if band == -1:
        return 0.0
    if band >= 0:
        return BAND_FLOOR_MS * math.pow(BAND, band + 0.5)
    return -BAND_FLOOR_MS * math.pow(BAND, -2 - band + 0.5)


def percentiles(values: deque[float] | list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


class StatsLines(Watcher):
    """--stats-interval: a one-line JSON stats record on stderr every so often (JSONL mode)."""

    def __init__(self, stats: Stats, stream: TextIO, interval: float) -> None:
        self._stats = stats
        self._stream = stream
        self._interval = interval
        self._next = time.monotonic() + interval

    def tick(self, now: float) -> None:
        if now < self._next:
            return
        self._next = now + self._interval
        stats = self._stats
        line = {
            "kind": "stats",
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "messages": stats.total,
            **({"received": stats.tally.received, "filtered": stats.tally.filtered}
               if stats.tally is not None else {}),
            "rate": round(stats.rate, 1), "errors": stats.errors,
            "redelivered": stats.redelivered, "stale": stats.stale,
            "repeated": stats.repeated, "chargers": len(stats.per_charger),
            "latency_ms": stats.live_percentiles(),
        }
        try:
            self._stream.write(json.dumps(line, separators=(",", ":")) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stderr gone: the stream itself goes on


class FilterNotice(Watcher):
    """Filters that match nothing are not silent: when messages arrive and none is shown,
    a line says so (after `first` seconds, then every `every` seconds while it lasts)."""

    def __init__(self, tally: Tally, say: Callable[[str], None], first: float = 5.0,
                 every: float = 60.0) -> None:
        self._tally = tally
        self._say = say
        self._every = every
        self._next = time.monotonic() + first
        self._said = False

    def tick(self, now: float) -> None:
        if now >= self._next and self._nothing_shown():
            self._next = now + self._every
            self._said = True
            self._tell()

    def close(self) -> None:
        if not self._said and self._nothing_shown():  # a run that ended before the first
            self._tell()

    def _nothing_shown(self) -> bool:
        return not self._tally.shown and self._tally.filtered > 0

    def _tell(self) -> None:
        tally = self._tally
        self._say(f"{tally.received:,} received, none matched the filters ({tally.filters}); "
                  f"the {tally.filtered:,} that did not match were {tally.fate}")
