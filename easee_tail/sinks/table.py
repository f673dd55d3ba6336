"""The live table for a terminal: a header with the stream's health above one of two views.

The stream view lists records as they come, newest at the bottom; the state view (see
state_view.py) shows the latest value of each observation per charger; the timeline view
the latest changes of state. `v` switches between them while running. The records go to
the live store (live.py), never here: the table reads the store when it draws, on `tick`,
at most REDRAWS_PER_SECOND times a second however fast messages come. Rows are plain lines
in fixed-width columns (rich's Table measured every cell of every frame: 25-50 ms a
redraw), and a row's line is made once, when it is first drawn.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.console import Group as RenderGroup
from rich.control import strip_control_codes
from rich.live import Live
from rich.text import Span, Text

from easee_tail.captures.story import was
from easee_tail.format import (
    display_ago,
    display_latency,
    display_time,
    display_value,
    latency_style,
)
from easee_tail.live import LiveStore
from easee_tail.model import ErrorRecord, Record
from easee_tail.sinks import VIEWS
from easee_tail.sinks.state_view import MORE_BELOW, state_lines
from easee_tail.source import Source
from easee_tail.state import Group
from easee_tail.text import plural, visible
from easee_tail.times import CLOCK_SKEW_MS, span

REDRAWS_PER_SECOND = 5
SWITCH_KEY = "v"
# State view scrolling, a charger at a time: j/k as in less and vi, and the arrow keys.
DOWN_KEYS = ("j", "\x1b[B", "\x1bOB")
UP_KEYS = ("k", "\x1b[A", "\x1bOA")
_SCROLL_KEY = re.compile("|".join(re.escape(key) for key in (*DOWN_KEYS, *UP_KEYS)))
_HEADER_CHARGERS = 12  # the busiest, by count; the line is cropped to the width anyway
_CHROME_LINES = 5  # three header lines, the column heading, a spare


@dataclass(frozen=True)
class StateOptions:
    groups: tuple[Group, ...]
    silent_after: float  # seconds without a message before a charger is marked silent


class TableSink:
    """A sink that takes no records (`takes_records = False`): it draws the store on `tick`."""

    takes_records = False

    def __init__(
        self, console: Console, store: LiveStore, source: Source, state: StateOptions,
        view: str = "stream", keys: Callable[[], str] | None = None, backlog: int | None = None,
        time_field: str = "received",
    ) -> None:
        self._console = console
        self._store = store  # kept up to date by its own sink: read here, never written
        self._stats = store.stats
        self._source = source  # for its name and its status ("reconnecting …"), read-only
        # the store's fleet and stories: None when that view can never be shown (not asked
        # for, and no keys to switch to it)
        self._state = state
        self._fleet = store.fleet
        self._story = store.story
        self._time_field = time_field  # the record field the time column shows
        self._views = [name for name, shown in zip(
            VIEWS, (True, store.fleet, store.story), strict=True) if shown is not None]
        self._view = view
        self._keys = keys
        self._skip = 0  # state view: chargers scrolled past
        self._more_below = False  # state view: chargers left below the screen, last drawn
        self._backlog = backlog
        self._rows = store.rows
        # the rows last drawn, by id(record), with their lines: a row is made once (again
        # when the width changes, which changes the columns)
        self._drawn: dict[int, tuple[Record, Text]] = {}
        self._drawn_width = 0
        self._next_draw = 0.0
        self._live = Live(
            self._render(),
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
        )
        self._live.start()

    def write(self, record: Record) -> None:
        pass  # never called: the records go to the store

    def flush(self) -> None:
        pass

    def tick(self, now: float) -> None:
        if now >= self._next_draw:
            self._next_draw = now + 1 / REDRAWS_PER_SECOND
            if self._keys is not None:
                self._press(self._keys())
            self._live.update(self._render(), refresh=True)

    def _press(self, keys: str) -> None:
        if SWITCH_KEY in keys.lower():
            self._view = self._next_view()
        if self._fleet is None:
            return
        for key in _SCROLL_KEY.findall(keys):  # in the order pressed
            if key in UP_KEYS:
                if self._skip:
                    self._skip -= 1
                    self._more_below = True  # the one scrolled past is below now
            elif self._more_below:  # down stops once the last charger is on screen
                self._skip += 1
                self._more_below = self._skip < len(self._fleet) - 1

    def notice(self, text: str) -> None:
        """A line printed above the table (rich keeps the live part below it)."""
        self._live.console.print(text, style="yellow", highlight=False, soft_wrap=True,
                                markup=False)
        self._next_draw = 0.0

    def close(self) -> None:
        self._live.update(self._render(), refresh=True)
        self._live.stop()

    def _next_view(self) -> str:
        return self._views[(self._views.index(self._view) + 1) % len(self._views)]

    def _render(self) -> RenderGroup:
        if self._view == "timeline" and self._story is not None:
            return RenderGroup(self._header(), *self._timeline())
        if self._view == "state" and self._fleet is not None:
            size = self._console.size
            lines = state_lines(
                self._fleet, self._state.groups, size.width,
                max(1, size.height - _CHROME_LINES), time.monotonic(), self._state.silent_after,
                skip=self._skip)
            self._more_below = lines[-1].plain.startswith(MORE_BELOW)
            return RenderGroup(self._header(), *lines)
        return RenderGroup(self._header(), self._table())

    def _header(self) -> Text:
        stats = self._stats
        header = Text(no_wrap=True, overflow="ellipsis")  # a narrow terminal crops, never wraps
        header.append("easee-tail", style="bold")
        # first: a narrow terminal crops the end of the line
        header.append(f" · {self._view} view", style="bold")
        if self._keys is not None and len(self._views) > 1:
            header.append(f" · {SWITCH_KEY}: next", style="dim")
            if self._view == "state":
                header.append(", j/k: scroll", style="dim")
        tally = stats.tally
        if tally is not None:  # before the server: what is hidden matters more
            header.append(f" · filter {visible(tally.filters)}", style="magenta")
        header.append(f" · {self._source.server}", style="cyan")
        header.append(f" · queue {self._source.queue}", style="cyan")
        if self._backlog:
            header.append(f" · {self._backlog_text()}", style="dim")
        header.append("\n")
        header.append(plural(stats.total, "message"), style="bold")
        if tally is not None:  # what the filters removed was consumed all the same
            header.append(f" shown of {tally.received:,} received · ")
            header.append(f"{tally.filtered:,} filtered out ({tally.fate})",
                          style="bold yellow" if tally.filtered and not tally.shown else "")
        header.append(f" · {stats.rate:.1f}/s · {plural(len(stats.per_charger), 'charger')}")
        if stats.errors:
            header.append(f" · {stats.errors} unreadable", style="red")
        latencies = stats.live_percentiles()
        if latencies:
            header.append(" · latency")
            for name in ("p50", "p95", "p99", "max"):
                value = latencies[name]
                header.append(f" {name} ")
                header.append(display_latency(value), style=latency_style(value))
        status = self._source.status
        if status is not None:
            header.append(f" · {status}", style="bold yellow")
        elif stats.last_received is None:
            header.append(" · nothing matched yet" if tally is not None and tally.received
                          else " · waiting for messages…", style="yellow")
        else:
            header.append(f" · last message {display_ago(time.monotonic() - stats.last_received)}")
        if stats.redelivered:
            header.append(f" · {stats.redelivered:,} redelivered", style="yellow")
        if stats.skewed:
            header.append(f" · {stats.skewed:,} with the local clock behind", style="yellow")
        if stats.stale or stats.repeated:
            header.append(f" · sent again: {stats.stale:,} stale, {stats.repeated:,} repeated",
                          style="yellow")
        if self._store.failed:
            header.append(f" · {self._store.failed:,} not drawn (internal error: please "
                          "report it)", style="red")
        header.append("\n")
        header.append("per charger", style="dim")
        for serial, count in stats.per_charger.most_common(_HEADER_CHARGERS):
            header.append(f" {visible(serial)} ")
            header.append(f"{count:,}", style="bold")
        if len(stats.per_charger) > _HEADER_CHARGERS:
            header.append(f" … {len(stats.per_charger) - _HEADER_CHARGERS} more", style="dim")
        return header

    def _backlog_text(self) -> str:
        """How much of what waited at start is still to come (it drains as it is read)."""
        assert self._backlog
        tally = self._stats.tally
        read = tally.received if tally is not None else self._stats.total
        left = self._backlog - read
        if left <= 0:
            return f"backlog of {self._backlog:,} read"
        return f"backlog {left:,} of {self._backlog:,} left"

    def _timeline(self) -> list[Text]:
        """The latest changes of the chargers shown, newest at the bottom."""
        assert self._story is not None
        size = self._console.size
        changes = list(self._story.changes)[-max(1, size.height - _CHROME_LINES):]
        if not changes:
            return [Text("no change of state yet (op mode, cable, limits, errors, cloud, "
                         "sessions)", style="dim")]
        names = [visible(change.name) for change in changes]  # a replayed capture's, too
        width = max(map(len, names))
        lines = []
        for change, name in zip(changes, names, strict=True):
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"{change.at.astimezone():%H:%M:%S} ", style="dim")
            line.append(f"{visible(change.charger):<8} ")
            line.append(f"{name:<{width}} ", style="cyan")
            line.append(visible(change.shown), style="bold")
            context = was(change)
            if context:
                line.append(f"  ({context})", style="dim")
            line.truncate(size.width, overflow="ellipsis")
            lines.append(line)
        return lines

    def _table(self) -> RenderGroup:
        width = self._console.size.width
        columns = fit_columns(width)
        heading = {**{column.name: column.name for column in columns},
                   "time": TIME_HEADINGS[self._time_field]}  # which clock it is
        lines = [Text(" ".join(
            heading[column.name].rjust(column.width) if column.right
            else heading[column.name].ljust(column.width)
            for column in columns)[:width], style="bold")]
        room = max(1, self._console.size.height - _CHROME_LINES)
        drawn: dict[int, tuple[Record, Text]] = {}
        before = self._drawn if width == self._drawn_width else {}
        for record in list(self._rows)[-room:]:
            # `_drawn` holds the records it names, so no other record can have their id
            known = before.get(id(record))
            line = known[1] if known is not None else _line(
                _cells(record, self._time_field), columns)
            drawn[id(record)] = (record, line)
            lines.append(line)
        self._drawn, self._drawn_width = drawn, width
        return RenderGroup(*lines)


@dataclass(frozen=True)
class Column:
    name: str
    key: int  # index into a row's cells
    width: int
    right: bool = False


# In the order they are given up when the terminal is too narrow: the last goes first.
_COLUMNS = (
    Column("value", 4, 0),
    Column("name", 3, 24),
    Column("charger", 1, 11),  # a serial (8) and room for the redelivered mark
    Column("latency", 5, 8, right=True),
    Column("time", 0, 12),
    Column("id", 2, 3, right=True),
)
_SHOWN_ORDER = ("time", "charger", "id", "name", "value", "latency")
# The time column's heading says which clock it shows (--time-column).
TIME_HEADINGS = {"received": "received", "timestamp": "device time", "arrival": "arrival"}
_MIN_VALUE_WIDTH = 16


def fit_columns(width: int) -> list[Column]:
    """The columns that fit `width`, in display order; the value column takes what is left."""
    kept = list(_COLUMNS)
    while len(kept) > 1 and sum(c.width + 1 for c in kept[1:]) + _MIN_VALUE_WIDTH > width:
        kept.pop()
    fixed = sum(c.width + 1 for c in kept[1:])
    value = Column("value", 4, max(1, width - fixed))
    chosen = {c.name: c for c in [value, *kept[1:]]}
    return [chosen[name] for name in _SHOWN_ORDER if name in chosen]


def _line(cells: list[tuple[str, str]], columns: list[Column]) -> Text:
    """A row: its cells in the columns, each cropped (with an ellipsis) or padded to its
    width in terminal cells, joined into one string with a span for each styled cell. (A
    Text per cell, aligned by rich, took a third of a frame in a backlog, where every
    frame's rows are new.)"""
    texts: list[str] = []
    spans: list[Span] = []
    at = 0
    for number, column in enumerate(columns):
        text, style = cells[column.key]
        fitted = _fitted(strip_control_codes(text), column.width, column.right)
        if number:
            texts.append(" ")
            at += 1
        if style:
            spans.append(Span(at, at + len(fitted), style))
        texts.append(fitted)
        at += len(fitted)
    return Text("".join(texts), no_wrap=True, overflow="ellipsis", spans=spans)


def _fitted(text: str, width: int, right: bool) -> str:
    """`text` in exactly `width` cells: cropped to an ellipsis, or padded (as rich aligns)."""
    cells = cell_len(text)
    if cells > width:
        text = set_cell_size(text, width - 1) + "…"
        cells = cell_len(text)
    pad = " " * (width - cells)
    return pad + text if right else text + pad


def _cells(record: Record, time_field: str) -> list[tuple[str, str]]:
    """The row's texts and styles, made once per record however often it is drawn."""
    is_error = isinstance(record, ErrorRecord)
    latency = record.latency_ms
    latency_text = display_latency(latency)
    if latency is not None and latency < 0:
        latency_text = "⚠ clock" if latency < -CLOCK_SKEW_MS else "⚠ " + latency_text
    charger = visible(record.charger or "?")
    if record.redelivered:  # seen before a reconnect, perhaps: at-least-once, marked
        charger = "↻ " + charger
    value, value_style = display_value(record), "red" if is_error else ""
    again = _sent_again(record)
    if again:  # an old value the cloud sent again: said, and dimmed
        value, value_style = f"{value}  [{again}]", "dim"
    return [
        (display_time(moment) if (moment := getattr(record, time_field, None)) else "–", ""),
        (charger, "yellow" if record.redelivered else ""),
        ("" if record.id is None else str(record.id), ""),
        ("error" if isinstance(record, ErrorRecord) else visible(record.name),
         "red" if is_error else ("" if record.kind == "observation" else "dim")),
        (value, value_style),
        (latency_text, latency_style(latency)),
    ]


def _sent_again(record: Record) -> str | None:
    """`stale 1h 0m`, `repeated`, both, or None for a value that is news."""
    if isinstance(record, ErrorRecord) or not (record.stale or record.repeated):
        return None
    marks = []
    if record.stale and record.timestamp is not None and record.arrival is not None:
        marks.append(f"stale {span((record.arrival - record.timestamp).total_seconds())}")
    elif record.stale:
        marks.append("stale")
    if record.repeated:
        marks.append("repeated")
    return ", ".join(marks)
