"""Replay: JSON lines written by --save (or any easee-tail JSONL) as a source, so that the
same filters, table and sinks run on a capture without a broker.

Each line is parsed once, by the capture reader (easee_tail.captures), which looks at the
bytes first: a replay for a few chargers or observations parses only their lines. The
source hands over a Delivery whose body is the line and keeps the record read, which its
`record` method gives the pipeline as the decode step. A line that is not a record is
reported (the first few with their place, then a count) and skipped; it never stops the
replay.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from easee_tail.captures.reader import Reader
from easee_tail.model import Delivery, Record
from easee_tail.source import IDLE_TICK

MAX_BATCH = 500


class ReplaySource:
    queue = "(replay)"
    status: str | None = None
    reconnects = 0

    def __init__(self, reader: Reader, speed: float | None) -> None:
        """`speed`: None for as fast as possible, else 1.0 for the original pace, 2.0 twice
        as fast. The reader reports the lines it skips."""
        self._reader = reader
        self._speed = speed
        self.server = "replay of " + ", ".join(capture.name for capture in reader.captures)
        self._read: dict[int, Record] = {}  # handed over, not yet taken by `record`

    def record(self, delivery: Delivery) -> Record:
        """The decode step: the record read from the delivery's line."""
        return self._read.pop(delivery.tag)

    def batches(self) -> Iterator[Sequence[Delivery]]:
        first_moment: float | None = None
        started = time.monotonic()
        batch: list[Delivery] = []
        tag = 0
        for read in self._reader.lines(beats=True):
            if read is None:  # a block read: the loop gets control, with or without lines
                yield batch
                batch = []
                continue
            record, line = read
            tag += 1
            self._read[tag] = record
            moment = record.received.timestamp()
            delivery = Delivery("", line, None, moment, False, tag)
            if self._speed is not None:
                if first_moment is None:
                    first_moment = moment
                due = started + (moment - first_moment) / self._speed
                while (wait := due - time.monotonic()) > 0:
                    if batch:
                        yield batch
                        batch = []
                    time.sleep(min(wait, IDLE_TICK))
                    yield ()
            batch.append(delivery)
            if len(batch) >= MAX_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
        self._reader.check()

    def passed_over(self) -> int:
        """Lines the reader's sieve let pass without parsing (no filter would keep them)."""
        return self._reader.passed_over()

    def ack_through(self, tag: int) -> None:
        pass  # a file has nothing to acknowledge

    def close(self) -> None:
        self._reader.finish()
