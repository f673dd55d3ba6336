"""What a monitor is told while the stream runs: --alert-latency and --alert-silence (a line
when a bound is crossed and one when it is kept again; with --exit-on-alert, the end of the
run), and once, that the local clock is behind the cloud's.

Sinks that take no records: they read the run's Stats when the loop ticks (at least every
0.2 s, see source.IDLE_TICK). With filters on, both alerts judge what the filters keep: an
alert on one charger's silence is `--charger EH123456 --alert-silence 10m`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from easee_tail.errors import AlertRaised
from easee_tail.format import display_latency
from easee_tail.sinks import Watcher
from easee_tail.stats import Stats
from easee_tail.text import plural
from easee_tail.times import span

LATENCY, SILENCE = "latency", "silence"


@dataclass(frozen=True)
class AlertBounds:
    latency: float | None = None  # seconds the p99 latency of the last minute may reach
    silence: float | None = None  # seconds the stream may go without a message
    exit: bool = False  # --exit-on-alert: the first alert ends the run

    @property
    def any(self) -> bool:
        return self.latency is not None or self.silence is not None


def p99_above(count: int, over: int) -> bool:
    """Whether the 99th percentile of `count` latencies lies above the bound when `over` of
    them do: the percentile is the value at index int(0.99 * count) of them in order."""
    return count > 0 and over >= count - int(0.99 * count)


class Alerts(Watcher):
    """Raised and recovered, each said once per crossing, as a line on stderr (above the
    table when there is one). `raised` is read by --metrics."""

    def __init__(self, bounds: AlertBounds, stats: Stats, say: Callable[[str], None],
                 started: float, filtered: bool = False) -> None:
        self._bounds = bounds
        self._stats = stats
        self._say = say
        self._started = started  # monotonic: the silence before the first message counts
        self._what = "message matching the filters" if filtered else "message"
        self.raised: dict[str, bool] = {}
        if bounds.latency is not None:
            self.raised[LATENCY] = False
        if bounds.silence is not None:
            self.raised[SILENCE] = False

    def tick(self, now: float) -> None:
        bounds, stats = self._bounds, self._stats
        if bounds.latency is not None:
            count, over = stats.last_minute(now)
            if count:  # with nothing in the last minute, latency is not known (silence is)
                bound = display_latency(bounds.latency * 1000)
                high = p99_above(count, over)
                took = f"{over:,} of {plural(count, 'message')} took longer"
                if high and not self.raised[LATENCY]:
                    self._change(LATENCY, True, f"p99 latency over the last minute is above "
                                 f"{bound} ({took}; --alert-latency)")
                elif not high and self.raised[LATENCY]:
                    self._change(LATENCY, False, f"p99 latency over the last minute is within "
                                 f"{bound} again ({took})")
        if bounds.silence is not None:
            last = stats.last_received
            quiet = now - (self._started if last is None else last)
            if quiet >= bounds.silence and not self.raised[SILENCE]:
                since = "since the start" if last is None else "since the last one"
                self._change(SILENCE, True, f"no {self._what} for {span(quiet)} ({since}; "
                             f"--alert-silence {span(bounds.silence)})")
            elif quiet < bounds.silence and self.raised[SILENCE]:
                self._change(SILENCE, False, f"{self._what}s again, after a silence")

    def _change(self, kind: str, high: bool, text: str) -> None:
        self.raised[kind] = high
        if high and self._bounds.exit:
            raise AlertRaised(f"alert: {text}; --exit-on-alert ends the run")
        self._say(f"alert: {text}" if high else f"recovered: {text}")


class ClockNotice(Watcher):
    """Once a run: ArrivalTime ahead of this machine's clock by more than the skew allowed
    (stats.CLOCK_SKEW_MS) means this clock is behind. Such messages are counted (the
    header, the exit summary, --metrics), not taken as latency."""

    def __init__(self, stats: Stats, say: Callable[[str], None]) -> None:
        self._stats = stats
        self._say = say
        self._said = False

    def tick(self, now: float) -> None:
        first = self._stats.first_skew
        if first is not None and not self._said:
            self._said = True
            charger, ahead = first
            self._say(f"the ArrivalTime of a message from {charger} is "
                      f"{display_latency(ahead)} ahead of this machine's clock: this clock is "
                      "behind (is it synchronised?); messages like it are counted, not shown "
                      "as latency")

    def close(self) -> None:
        self.tick(0.0)  # a run that ended before its next tick
