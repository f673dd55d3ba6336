"""The consumer loop: source -> decode -> filter -> sinks, then acknowledge.

This is the only place that acknowledges, and only after every sink has flushed what it
was given: a message whose line is not out is never acked, so it stays in the queue.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from types import FrameType

from easee_tail.filters import Predicate
from easee_tail.model import Delivery, Record
from easee_tail.sinks import PipeClosed, Sink
from easee_tail.source import Source


class Ending(Enum):
    COUNT_REACHED = "count"
    DURATION_REACHED = "duration"
    SOURCE_ENDED = "source ended"
    PIPE_CLOSED = "pipe closed"
    SIGNAL = "signal"


@dataclass(frozen=True)
class Limits:
    count: int | None = None  # stop after this many records passed the filters
    duration: float | None = None  # stop after this many seconds of consuming


class Interrupted(BaseException):
    """A signal that arrived while nothing could be finished gracefully (connecting, say)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopRequest:
    """Signal handling: raise at once, or, while consuming, finish the batch first.

    SIGINT, SIGTERM, SIGHUP and SIGPIPE all stop easee-tail. While consuming, the batch in
    hand is finished (written, acknowledged) and the loop ends; if that does not happen
    within GRACE seconds (a write blocked on a pipe nobody reads, say), or a second signal
    comes, it raises at once. Nothing unwritten is acknowledged either way.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)
    GRACE = 0.8  # seconds

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferring = False

    def install(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, self._handle)
        signal.signal(signal.SIGALRM, self._overdue)

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.deferring and self.signum is None:
            self.signum = signum
            signal.setitimer(signal.ITIMER_REAL, self.GRACE)
            return
        raise Interrupted(self.signum or signum)

    def _overdue(self, _signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)


def run(
    source: Source,
    decode: Callable[[Delivery], Record],
    keep: Predicate | None,
    sinks: Sequence[Sink],
    limits: Limits,
    stop: StopRequest,
) -> Ending:
    deadline = time.monotonic() + limits.duration if limits.duration is not None else None
    remaining = limits.count
    write_all = [sink.write for sink in sinks]
    stop.deferring = True
    try:
        for batch in source.batches():
            last_tag: int | None = None
            for delivery in batch:
                record = decode(delivery)
                if keep is None or keep(record):
                    for write in write_all:
                        write(record)
                    if remaining is not None:
                        remaining -= 1
                last_tag = delivery.tag
                if remaining == 0:
                    break
            if last_tag is not None:
                try:
                    for sink in sinks:
                        sink.flush()
                except PipeClosed:
                    return Ending.PIPE_CLOSED
                source.ack_through(last_tag)
            now = time.monotonic()
            for sink in sinks:
                sink.tick(now)
            if remaining == 0:
                return Ending.COUNT_REACHED
            if stop.signum is not None:
                return Ending.SIGNAL
            if deadline is not None and now >= deadline:
                return Ending.DURATION_REACHED
        return Ending.SOURCE_ENDED
    finally:
        stop.deferring = False
        stop.disarm()
