"""Where records go: JSON lines (stdout, --save file), the live table, statistics.

Every sink has the same four calls. `write` may buffer; `flush` must leave everything
written so far in the hands of the OS (the loop acknowledges right after), or raise
PartialFlush saying how much it did; `tick` lets a sink do timed work (redraw, noticing a
reader that left) from the loop's thread; `close` ends it. A sink that only watches (the
table draws from the live store; alerts) says `takes_records = False` and is never written to.
"""

from __future__ import annotations

from typing import Protocol

from easee_tail.model import Record

VIEWS = ("stream", "state", "timeline")  # the table's views, in the order `v` goes through


class Sink(Protocol):
    def write(self, record: Record) -> None: ...

    def flush(self) -> None: ...

    def tick(self, now: float) -> None: ...

    def close(self) -> None: ...


class Watcher:
    """A sink that takes no records: it reads what the run keeps (stats, tally) when the
    loop ticks. Subclasses give `tick`, and `close` when they hold something."""

    takes_records = False

    def write(self, record: Record) -> None:
        pass

    def flush(self) -> None:
        pass

    def tick(self, now: float) -> None:
        pass

    def close(self) -> None:
        pass


class PipeClosed(Exception):
    """The reader of stdout went away (`| head`): stop quietly, ack nothing more."""


class PartialFlush(Exception):
    """`flush` gave up after a stop (a reader that does not read): only the first `written`
    records handed over since the last flush are out, each line whole."""

    def __init__(self, written: int) -> None:
        super().__init__(written)
        self.written = written
