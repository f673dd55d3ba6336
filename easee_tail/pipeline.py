"""The consumer loop: source -> decode -> filter -> sinks, then acknowledge.

This is the only place that acknowledges, and only after every sink has flushed what it
was given: a message whose line is not out is never acked, so it stays in the queue. When a
sink could write only part of a batch (a stop while the reader was not reading), the loop
acknowledges the messages before the first record that did not go out, and no more.

Nothing a message carries can stop the loop: an exception from decode or from a sink's
write becomes an error record naming it, written in the message's place.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from types import FrameType

from easee_tail.decode import failed_record
from easee_tail.errors import EaseeTailError, Interrupted
from easee_tail.filters import Predicate
from easee_tail.model import Delivery, Record
from easee_tail.sinks import PartialFlush, PipeClosed, Sink
from easee_tail.source import Source
from easee_tail.stats import Tally


class Ending(Enum):
    COUNT_REACHED = "count"
    DURATION_REACHED = "duration"
    SOURCE_ENDED = "source ended"
    PIPE_CLOSED = "pipe closed"
    SIGNAL = "signal"
    IDLE = "idle"
    BACKLOG_DONE = "backlog done"


THAW_EVERY = 60.0  # seconds between the loop's full collections (see `run`)


@dataclass(frozen=True)
class Limits:
    count: int | None = None  # stop after this many records passed the filters
    duration: float | None = None  # stop after this many seconds of consuming
    idle: float | None = None  # stop after this many seconds without a message
    backlog: int | None = None  # stop once this many messages were handled (those waiting)


class StopRequest:
    """Signal handling: SIGINT, SIGTERM, SIGHUP and SIGPIPE all stop easee-tail.

    Outside the consumer loop (connecting, asking the API) nothing is in hand, and a signal
    raises Interrupted at once. Inside it, the handler only records the signal: the loop
    finishes the batch in hand (written, then acknowledged) and ends. A write that a reader
    holds up (a pipe nobody reads) gives up GRACE seconds after the signal, at a line
    boundary; what it did not write is not acknowledged and stays in the queue.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)
    GRACE = 1.0  # seconds a held-up write may take to finish its batch after a signal
    CUT = 4.0  # seconds after which even a half-written line is given up

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferring = False  # set by the loop: record signals, do not raise
        self._raising = 0  # inside `interruptible()`: raise even while deferring
        self._at = 0.0  # monotonic time of the first signal

    def install(self) -> None:
        for signum in self.SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum, self._at = signum, time.monotonic()
        if not self.deferring or self._raising:
            raise Interrupted(self.signum)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A stretch of the loop with nothing in hand (a reconnection attempt): a signal
        raises at once instead of waiting for it to end."""
        if self.signum is not None and self.deferring:
            raise Interrupted(self.signum)
        self._raising += 1
        try:
            yield
        finally:
            self._raising -= 1

    def overdue(self, cut: bool = False) -> bool:
        """A signal came and a held-up write has had its time (CUT: even mid-line)."""
        return self.signum is not None and \
            time.monotonic() - self._at >= (self.CUT if cut else self.GRACE)


def run(
    source: Source,
    decode: Callable[[Delivery], Record],
    keep: Predicate | None,
    sinks: Sequence[Sink],
    limits: Limits,
    stop: StopRequest,
    tally: Tally | None = None,
) -> Ending:
    deadline = time.monotonic() + limits.duration if limits.duration is not None else None
    remaining = limits.count
    backlog = limits.backlog
    if backlog == 0:
        return Ending.BACKLOG_DONE
    heard = time.monotonic()
    # a sink that only watches (the table, alerts) takes no records
    write_all = [sink.write for sink in sinks if getattr(sink, "takes_records", True)]
    # What is alive now (modules, the connection) lives as long as the run: frozen, the
    # collector never scans it again, however many records come and go. So is what outlives
    # each batch (the table's rows, the state view's values): the collector looks only at
    # what is new (without, the table spent three times as long in it as --jsonl). Now and
    # then all is thawed and collected once, so that cyclic garbage cannot pile up.
    gc.freeze()
    thaw_at = time.monotonic() + THAW_EVERY
    stop.deferring = True
    try:
        for batch in source.batches():
            if batch:
                # the index in the batch of each record handed to the sinks
                written: list[int] = []
                handed = 0
                for index, delivery in enumerate(batch):
                    try:
                        record = decode(delivery)
                    except Exception as bug:  # a decoder bug must not become a poison message
                        record = failed_record(delivery, "decoding", bug)
                    if keep is None or keep(record):
                        for write in write_all:
                            try:
                                write(record)
                            except EaseeTailError:
                                raise
                            except Exception as bug:
                                _write_failed(write, delivery, bug)
                        written.append(index)
                        if remaining is not None:
                            remaining -= 1
                    elif tally is not None:
                        tally.removed += 1
                    handed = index + 1
                    if remaining == 0 or handed == backlog:
                        break
                if tally is not None:
                    tally.taken += handed
                try:
                    for sink in sinks:
                        sink.flush()
                except PipeClosed:
                    return Ending.PIPE_CLOSED
                except PartialFlush as partial:
                    # ack what came before the first record that did not go out
                    first_missing = written[partial.written] \
                        if partial.written < len(written) else handed
                    if first_missing:
                        source.ack_through(batch[first_missing - 1].tag)
                    return Ending.SIGNAL
                source.ack_through(batch[handed - 1].tag)
                if backlog is not None:
                    backlog -= handed
            now = time.monotonic()
            if batch:
                heard = now
                if now >= thaw_at:
                    thaw_at = now + THAW_EVERY
                    gc.unfreeze()
                    gc.collect()
                gc.freeze()
            try:
                for sink in sinks:
                    sink.tick(now)
            except PipeClosed:  # the reader left while nothing was being written
                return Ending.PIPE_CLOSED
            if remaining == 0:
                return Ending.COUNT_REACHED
            if backlog == 0:
                return Ending.BACKLOG_DONE
            if limits.idle is not None and now - heard >= limits.idle:
                return Ending.IDLE
            if stop.signum is not None:
                return Ending.SIGNAL
            if deadline is not None and now >= deadline:
                return Ending.DURATION_REACHED
        return Ending.SOURCE_ENDED
    finally:
        stop.deferring = False


def _write_failed(write: Callable[[Record], None], delivery: Delivery,
                  bug: Exception) -> None:
    """A sink that could not take a record gets its error record instead, and if not even
    that, the stream goes on."""
    with contextlib.suppress(Exception):
        write(failed_record(delivery, "writing", bug))
