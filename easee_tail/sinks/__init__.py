"""Where records go: JSON lines (stdout, --save file), the live table, statistics.

Every sink has the same four calls. `write` may buffer; `flush` must leave everything
written so far in the hands of the OS (the loop acknowledges right after); `tick` lets a
sink do timed work (redraw) from the loop's thread; `close` ends it.
"""

from __future__ import annotations

from typing import Protocol

from easee_tail.model import Record


class Sink(Protocol):
    def write(self, record: Record) -> None: ...

    def flush(self) -> None: ...

    def tick(self, now: float) -> None: ...

    def close(self) -> None: ...


class PipeClosed(Exception):
    """The reader of stdout went away (`| head`): stop quietly, ack nothing more."""
