"""One run of the pipeline, assembled from a typed spec: where records come from (a
source), what becomes of them (filters, then the table or JSON lines or template lines, a
--save copy, statistics), and when the run ends. The commands that stream (tail, demo,
replay) build a RunSpec from their options and call `consume`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, TextIO

import click

from easee_tail import catalogue
from easee_tail.alerts import AlertBounds, Alerts, ClockNotice
from easee_tail.captures.reader import CLOCK_SLACK, Sieve
from easee_tail.captures.story import LiveStory, story_data
from easee_tail.decode import decoder as table_decoder
from easee_tail.defaults import STALE_AFTER
from easee_tail.errors import EaseeTailError, ExitCode, Interrupted
from easee_tail.filters import (
    TIME_FIELDS,
    Condition,
    FilterSpec,
    build_filter,
    could_be_serial,
    split_negated,
)
from easee_tail.format import summary
from easee_tail.keys import Keys
from easee_tail.model import Delivery, Record
from easee_tail.pipeline import Ending, Limits, run
from easee_tail.reporter import Reporter
from easee_tail.sinks import Sink
from easee_tail.sinks.capture import CaptureSink, Rotation, compression_for
from easee_tail.sinks.jsonl import JsonlSink, LineEncoder, encode
from easee_tail.sinks.template import Template
from easee_tail.source import Source
from easee_tail.state import FleetState, groups
from easee_tail.stats import FilterNotice, Stats, StatsLines, Tally

# SIGINT, SIGTERM, SIGHUP: 128 + the number, as shells report them. SIGPIPE means the reader
# went away, which is how `| head` ends: 0, as when a write finds the pipe closed.
SIGNAL_EXIT: dict[int, ExitCode] = {
    signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED,
    signal.SIGHUP: ExitCode.HANGUP, signal.SIGPIPE: ExitCode.OK,
}


@dataclass(frozen=True)
class Output:
    """What is shown, and where a copy goes."""

    jsonl: bool = False
    line_format: Template | str | None = None  # a template, or "jsonl"
    save_path: str | None = None
    fsync: bool = False
    rotate: tuple[int | None, float | None] | None = None  # (bytes, seconds)
    stats_interval: float | None = None
    view: str = "stream"
    time_column: str = "received"
    silent_after: float = 300.0
    stale_after: float = STALE_AFTER  # live decoding: when a Timestamp is old news


@dataclass(frozen=True)
class Selection:
    """Which records are shown (the filters)."""

    chargers: tuple[str, ...] = ()
    observations: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # (wanted, excluded)
    tags: tuple[str, ...] = ()
    where: tuple[Condition, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    time_field: str = "device"

    def filter_spec(self) -> FilterSpec:
        """The options as the filters take them: `!` split off, the time field named."""
        chargers, not_chargers = split_negated(self.chargers)
        tags, not_tags = split_negated(self.tags)
        return FilterSpec(
            tuple(chargers), tuple(not_chargers), self.observations[0],
            self.observations[1], tuple(tags), tuple(not_tags), self.where, self.since,
            self.until, TIME_FIELDS[self.time_field])

    def sieve(self) -> Sieve:
        """What a capture's bytes are looked at for before its lines are parsed."""
        chargers, _not_chargers = split_negated(self.chargers)
        # received >= arrival >= (mostly) the device's time: a record of the window was
        # received after its start (less a clock running ahead); but how long after its end
        # it came has no bound (a backlog, a replay of old values), so only a window on the
        # received clock ends the reading
        received = self.time_field == "received"
        slack = 0.0 if self.time_field in ("received", "arrival") else CLOCK_SLACK
        return Sieve(tuple(chargers), frozenset(self.observations[0]) or None,
                     None if self.since is None else self.since.timestamp() - slack,
                     None if self.until is None or not received else self.until.timestamp())


@dataclass(frozen=True)
class Ends:
    """When the run ends, besides a signal or the source's end."""

    count: int | None = None
    duration: float | None = None
    idle_timeout: float | None = None
    exit_at_end: bool = False


@dataclass(frozen=True)
class Monitor:
    """What a run left as a monitor tells: --metrics, --alert-*."""

    metrics_address: tuple[str, int] | None = None
    metrics_per_charger: bool = False
    alert_latency: float | None = None  # seconds
    alert_silence: float | None = None  # seconds
    exit_on_alert: bool = False

    @property
    def bounds(self) -> AlertBounds:
        return AlertBounds(self.alert_latency, self.alert_silence, self.exit_on_alert)


@dataclass(frozen=True)
class RunSpec:
    output: Output
    selection: Selection
    ends: Ends
    monitor: Monitor = Monitor()

    @classmethod
    def take(cls, options: dict[str, Any]) -> RunSpec:
        """The spec from a command's output options, which are removed from `options`
        (what is left is the command's own)."""
        def pick(kind: Any) -> Any:
            return kind(**{field.name: _frozen(options.pop(field.name))
                           for field in fields(kind) if field.name in options})

        return cls(pick(Output), pick(Selection), pick(Ends), pick(Monitor))


def _frozen(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def _save_sink(out: Output, encoder: Callable[[Record], bytes]) -> Sink:
    """The --save file: plain and appended to, or compressed or rotated (sinks/capture.py)."""
    assert out.save_path is not None
    if out.rotate is None and not compression_for(out.save_path):
        return JsonlSink.open_file(out.save_path, encoder, fsync=out.fsync)
    rotation = None if out.rotate is None else Rotation(*out.rotate)
    return CaptureSink(out.save_path, encoder, out.fsync, rotation)


def _metrics_sink(reporter: Reporter, monitor: Monitor, stats: Stats, source: Source,
                  backlog: int | None, alerts: Alerts | None) -> Sink:
    from easee_tail.access import loopback
    from easee_tail.metrics import Collector, MetricsOptions, MetricsSink

    assert monitor.metrics_address is not None
    options = MetricsOptions(monitor.metrics_address, monitor.metrics_per_charger)
    sink = MetricsSink(options, Collector(stats, source, backlog, alerts, options.per_charger))
    host = options.address[0]
    if not loopback(host):
        reporter.warn(f"--metrics listens on {host}, not loopback: anyone who can reach this "
                      "machine reads the metrics (server, queue, serials with "
                      "--metrics-per-charger)")
    reporter.info(f"metrics for Prometheus at {sink.url}")
    return sink


def consume(
    reporter: Reporter, spec: RunSpec, open_source: Callable[[], tuple[Source, int | None]],
    decoder: Callable[[Delivery], Record] | None = None, live: bool = True,
    removes: bool = False, passed_over: Callable[[], int] | None = None,
) -> None:
    """Run the pipeline as `spec` says, on the source `open_source` opens (with the number
    of messages waiting, if it knows); `removes`: what it acknowledges leaves a real queue;
    `passed_over`: how many lines a capture's reader has not parsed (filtered out)."""
    env = reporter.env
    out, selection, ends, monitor = spec.output, spec.selection, spec.ends, spec.monitor
    bounds = monitor.bounds
    if out.fsync and not out.save_path:
        raise click.UsageError("--fsync goes with --save")
    if out.rotate and not out.save_path:
        raise click.UsageError("--rotate goes with --save")
    reporter.stop.install()
    duration = ends.duration
    if selection.until is not None and live:  # a live stream also ends at that time
        left = (selection.until - datetime.now(UTC)).total_seconds()
        if left <= 0:
            raise click.BadParameter("is in the past: a live stream would end at once",
                                     param_hint="--until")
        duration = left if duration is None else min(duration, left)
    filters = selection.filter_spec()
    keep = build_filter(filters)
    table = catalogue.load()
    for serial in [*filters.chargers, *filters.not_chargers]:
        if not could_be_serial(serial):
            reporter.warn(f"--charger {serial!r} cannot be an Easee serial (two letters, "
                          "then six letters or digits, like EH123456): it matches no charger")
    tally = Tally(filters.describe(table.get), removes) if keep is not None else None
    if tally is not None and passed_over is not None:
        tally.passed_over = passed_over
    sinks: list[Sink] = []
    source: Source | None = None
    stats: Stats | None = None
    failure: EaseeTailError | None = None
    ending = Ending.SOURCE_ENDED
    cut_short = False  # a signal that could not wait for the batch (a blocked write)
    started = time.monotonic()
    # stdout and --save share one encoding of each record; alone, stdout needs no memory
    encoder: Callable[[Record], bytes] = LineEncoder() if out.save_path else encode
    keys: Keys | None = None
    try:
        save = _save_sink(out, encoder) if out.save_path else None
        if save is not None:
            sinks.append(save)
        source, backlog = open_source()
        if tally is not None and removes:
            reporter.info(f"filters on ({tally.filters}): messages that do not match are "
                          "acknowledged, so they leave the queue unseen (--peek leaves them)")
        template = out.line_format if isinstance(out.line_format, Template) else None
        show_table = not (out.jsonl or out.line_format == "jsonl") and template is None \
            and env.stdout_isatty
        if show_table or env.stderr_isatty or out.stats_interval or bounds.any \
                or monitor.metrics_address is not None:
            stats = Stats(tally, None if bounds.latency is None else bounds.latency * 1000)
        if stats is not None and not show_table:
            sinks.append(stats)
        alerts = None
        if stats is not None:
            sinks.append(ClockNotice(stats, reporter.alarm))
            if bounds.any:
                alerts = Alerts(bounds, stats, reporter.alarm, time.monotonic(),
                                filtered=tally is not None)
                sinks.append(alerts)
        if monitor.metrics_address is not None:
            assert stats is not None
            sinks.append(_metrics_sink(reporter, monitor, stats, source, backlog, alerts))
        if tally is not None and not show_table:
            sinks.append(FilterNotice(tally, reporter.info))
        if out.stats_interval and not show_table:
            assert stats is not None
            sinks.append(StatsLines(stats, env.stderr, out.stats_interval))
        if show_table:
            from rich.console import Console  # only for a table

            from easee_tail.live import LiveStore
            from easee_tail.sinks.table import StateOptions, TableSink
            assert stats is not None
            keys = Keys.open(env.stdin) if env.stdin_isatty else None
            # a view is kept only if it can be shown: asked for, or keys to switch to it
            store = LiveStore(
                stats, FleetState(table, stats.per_charger)
                if out.view == "state" or keys is not None else None,
                LiveStory(story_data(table)) if out.view == "timeline" or keys is not None
                else None)
            sinks.append(store)
            console = Console(file=env.stdout, no_color=env.no_color,
                              _environ=_sized_by_terminal(env.stdout))
            reporter.table = TableSink(
                console, store, source, StateOptions(groups(table), out.silent_after),
                view=out.view, keys=keys.read if keys else None, backlog=backlog,
                time_field=TIME_FIELDS[out.time_column])
            sinks.append(reporter.table)
        else:
            env.stdout_bytes.flush()  # the sink writes to the descriptor itself
            # a plain --save file of the same lines is written from this sink's, encoded once
            # (not a FIFO or a terminal, whose reader may stall: it keeps its own careful sink)
            copies = (save.following(),) if isinstance(save, JsonlSink) and template is None \
                and not save.may_stall else ()
            sinks.append(JsonlSink(env.stdout_bytes, "stdout", is_stdout=True,
                                   encoder=template or (encode if copies else encoder),
                                   give_up=reporter.stop.overdue, copies=copies))
        started = time.monotonic()
        ending = run(source, decoder or table_decoder(table, out.stale_after), keep, sinks,
                     Limits(ends.count, duration, ends.idle_timeout,
                            backlog if ends.exit_at_end else None), reporter.stop, tally)
    except Interrupted as interrupted:
        ending, reporter.stop.signum = Ending.SIGNAL, interrupted.signum
        cut_short = True
    except EaseeTailError as problem:
        failure = problem
    finally:
        # The terminal first (the table's cursor and screen, then the keys' modes), with
        # signals only noted meanwhile: a second Ctrl-C must not leave it without echo.
        reporter.stop.deferring = True
        try:
            _close_sinks(reporter, sinks)  # the table stops before any error line
        finally:
            if keys is not None:
                keys.close()
            reporter.stop.deferring = False
            if source is not None:
                source.close()
    if failure is not None:
        reporter.fail(failure.message, failure.exit_code)
    if ending is Ending.PIPE_CLOSED or reporter.stop.signum == signal.SIGPIPE or cut_short:
        silence_stdout()  # what a blocked write left in Python's buffer was never acked
    if stats is not None and env.stderr_isatty:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            reporter.stderr.print(summary(stats, time.monotonic() - started,
                                          reporter.stderr.size.width), style="dim")
    if ending is Ending.SIGNAL and reporter.stop.signum is not None:
        sys.exit(SIGNAL_EXIT.get(reporter.stop.signum, ExitCode.INTERRUPTED))


def _sized_by_terminal(stream: TextIO) -> dict[str, str]:
    """The environment the table's console reads its size from: without COLUMNS and LINES
    when the terminal tells its size, so that each frame takes the size it has now. A shell
    that exported them set them once, when it started the command: a resize would leave the
    table drawing at the old width (its lines wrapped, the frames piled up)."""
    try:
        told = all(os.get_terminal_size(stream.fileno()))
    except (OSError, ValueError, AttributeError):
        told = False
    return {key: value for key, value in os.environ.items()
            if not told or key not in ("COLUMNS", "LINES")}


def _close_sinks(reporter: Reporter, sinks: list[Sink]) -> None:
    reporter.table = None
    while sinks:
        with contextlib.suppress(OSError, EaseeTailError):
            sinks.pop().close()


def silence_stdout() -> None:
    """After `| head` closed the pipe, keep Python's exit-time flush from complaining."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
