"""A whole capture's question on every core. Each core takes a share of the chargers (by a
hash of the serial) and answers the question for them alone: it scans every line's bytes
(the cheap part, at memory speed) but parses only its own chargers' lines (the dear part),
so every charger is kept whole in one process and told there as a single pass tells it.
The answers, each in the order of its chargers' serials, are merged by serial, and the
skipped lines by their place in the files: the output is the same to the byte.

What crosses between processes is the answer (changes, sessions: few), never the records
read (pickling a record costs more than parsing its line). Stdin and small inputs are read
in this process: forking costs more than a small file takes to read.
"""

from __future__ import annotations

import heapq
import os
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from easee_tail.captures.files import Capture, open_capture
from easee_tail.captures.reader import GLOB as _GLOB
from easee_tail.captures.reader import Reader, Skip
from easee_tail.captures.story import Chargers, StoryData, in_order, kept
from easee_tail.model import Record

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

SPLIT_FROM = 32 << 20  # bytes of input from which every core takes a share
Kept = Chargers


class Told(Protocol):
    @property
    def charger(self) -> str: ...


T = TypeVar("T", bound=Told)
Question = tuple[Reader, Callable[[Record], bool] | None, StoryData, Callable[[Kept], list[Any]]]

# The question a worker answers, set before the fork (a forked process has it as it was).
_question: Question | None = None
_done: Synchronized[int] | None = None


def cores() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def answer(reader: Reader, keep: Callable[[Record], bool] | None, data: StoryData,
           tell: Callable[[Kept], list[T]],
           wait: Callable[[Callable[[float], bool]], None] | None = None) -> list[T]:
    """`tell` applied to what a story reads of the reader's captures (per charger, each in
    the order of its clock, by serial): on every core where the input is large and the
    question is not about a few chargers named (whose lines are few to parse). `wait`,
    where given, is handed a function that waits up to N seconds for the shares and says
    whether they are done (a progress bar draws meanwhile)."""
    shares = cores()
    captures = reader.captures
    few = reader.sieve.chargers and not any(_GLOB.search(serial)
                                            for serial in reader.sieve.chargers)
    if few or shares < 2 or any(not capture.seekable for capture in captures) \
            or sum(capture.size or 0 for capture in captures) < SPLIT_FROM:
        return tell(in_order(kept(reader.records(), data, keep)))
    return _shared(reader, keep, data, tell, shares, wait)


def _shared(reader: Reader, keep: Callable[[Record], bool] | None, data: StoryData,
            tell: Callable[[Kept], list[T]], shares: int,
            wait: Callable[[Callable[[float], bool]], None] | None) -> list[T]:
    import multiprocessing
    global _question, _done
    context = multiprocessing.get_context("fork")
    _question, _done = (reader, keep, data, tell), context.Value("q", 0)
    done, told = _done, 0

    def progress() -> None:
        nonlocal told
        if reader.advance is not None and done.value > told:
            reader.advance(done.value - told)
            told = done.value

    try:
        # Ctrl-C reaches the whole process group: the workers leave it to this process,
        # which ends them (the pool's exit terminates them) and exits 130. Blocked while
        # they are forked, so that none takes it before it ignores it.
        masked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pool = context.Pool(shares, initializer=_deaf)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
        with pool:
            pending = pool.map_async(_share, [(share, shares) for share in range(shares)])
            if wait is not None:
                def ready(seconds: float) -> bool:
                    pending.wait(seconds)
                    progress()
                    return pending.ready()
                wait(ready)
            results = pending.get()
    finally:
        _question = _done = None
    progress()
    reader.skips.absorb([skips for _told, skips, _tally in results])
    for _told, _skips, (records, seen) in results:
        reader.tally.records += records
        reader.tally.lines_seen += seen
    return list(heapq.merge(*(told for told, _skips, _tally in results),
                            key=lambda item: item.charger))


def _deaf() -> None:
    """A worker's start: SIGINT ignored (one that came meanwhile is dropped), then let in."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _share(job: tuple[int, int]) -> tuple[list[Any], tuple[int, Sequence[Skip]],
                                          tuple[int, int]]:
    """In a worker: the question for one share of the chargers."""
    share, shares = job
    assert _question is not None and _done is not None
    parent, keep, data, tell = _question
    done = _done

    def advance(count: int) -> None:  # one share's reading stands for all of them
        with done.get_lock():
            done.value += count

    captures: list[Capture] = [open_capture(capture.name, None)  # type: ignore[arg-type]
                               for capture in parent.captures]  # files, never stdin
    mine = Reader(captures, parent.sieve, lambda _message: None,
                  advance if share == 0 else None, (share, shares))
    try:
        told = tell(in_order(kept(mine.records(), data, keep)))
    finally:
        mine.finish()
    return told, (mine.skips.count, mine.skips.first), (mine.tally.records,
                                                        mine.tally.lines_seen)
