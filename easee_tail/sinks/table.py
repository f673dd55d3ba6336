"""The live table for a terminal: newest records at the bottom, a header with the stream's health.

It only appends to a bounded deque on `write`; drawing happens on `tick`, at most
REDRAWS_PER_SECOND times a second however fast messages come.
"""

from __future__ import annotations

import time
from collections import deque

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from easee_tail.format import (
    display_ago,
    display_latency,
    display_time,
    display_value,
    latency_style,
)
from easee_tail.model import Record
from easee_tail.stats import Stats

REDRAWS_PER_SECOND = 5
_CHROME_LINES = 6  # two header lines, the table's top, heading and bottom rules, a spare


class TableSink:
    def __init__(
        self, console: Console, stats: Stats, server: str, queue: str, backlog: int | None = None
    ) -> None:
        self._console = console
        self._stats = stats
        self._server = server
        self._queue = queue
        self._backlog = backlog
        self._rows: deque[Record] = deque(maxlen=500)
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
        self._rows.append(record)

    def flush(self) -> None:
        pass

    def tick(self, now: float) -> None:
        if now >= self._next_draw:
            self._next_draw = now + 1 / REDRAWS_PER_SECOND
            self._live.update(self._render(), refresh=True)

    def close(self) -> None:
        self._live.update(self._render(), refresh=True)
        self._live.stop()

    def _render(self) -> Group:
        return Group(self._header(), self._table())

    def _header(self) -> Text:
        stats = self._stats
        header = Text()
        header.append("easee-tail", style="bold")
        header.append(f" · {self._server}", style="cyan")
        header.append(f" · queue {self._queue}", style="cyan")
        if self._backlog:
            header.append(f"  ({self._backlog:,} were waiting at start)", style="dim")
        header.append("\n")
        header.append(f"{stats.total:,} messages", style="bold")
        header.append(f" · {stats.rate:.1f}/s · {len(stats.per_charger)} chargers")
        if stats.errors:
            header.append(f" · {stats.errors} unreadable", style="red")
        latencies = stats.live_percentiles()
        if latencies:
            header.append(" · latency ")
            for name in ("p50", "p95", "max"):
                value = latencies[name]
                header.append(f"{name} ")
                header.append(display_latency(value), style=latency_style(value))
                header.append(" ")
        if stats.last_received is None:
            header.append(" · waiting for messages…", style="yellow")
        else:
            header.append(f"· last message {display_ago(time.monotonic() - stats.last_received)}")
        return header

    def _table(self) -> Table:
        table = Table(expand=True, show_edge=False, pad_edge=False, header_style="bold")
        table.add_column("time", no_wrap=True, width=12)
        table.add_column("charger", no_wrap=True, max_width=12)
        table.add_column("id", justify="right", no_wrap=True, width=4)
        table.add_column("name", no_wrap=True, max_width=28, overflow="ellipsis")
        table.add_column("value", no_wrap=True, overflow="ellipsis", ratio=1)
        table.add_column("latency", justify="right", no_wrap=True, width=10)
        visible = max(1, self._console.size.height - _CHROME_LINES)
        for record in list(self._rows)[-visible:]:
            name_style = "red" if record.kind == "error" else (
                "dim" if record.kind != "observation" else "")
            latency = record.latency_ms
            latency_text = display_latency(latency)
            if latency is not None and latency < 0:
                latency_text = "⚠ " + latency_text
            table.add_row(
                display_time(record.received),
                record.charger or "?",
                "" if record.id is None else str(record.id),
                Text("error" if record.kind == "error" else record.name, style=name_style),
                Text(display_value(record), style="red" if record.kind == "error" else ""),
                Text(latency_text, style=latency_style(latency)),
            )
        return table
