"""JSON lines: one object per record, to stdout or to the --save file.

The one JSON encoder of the project. Lines are buffered and written on `flush`, which the
loop calls before every acknowledgement, so a line is out (in the kernel's hands) before
its message is acked.

Each line is copied into one growing buffer at once rather than kept as its own bytes
object until the flush: holding hundreds of freshly allocated lines made every encode
about three times slower (allocator churn; bench/run row 2 shows it).
"""

from __future__ import annotations

import bisect
import json
import os
import select
import stat
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import BinaryIO

import orjson

from easee_tail.errors import OutputFailure
from easee_tail.model import Record
from easee_tail.sinks import PartialFlush, PipeClosed

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE
POLL_MS = 100  # how often a held-up write looks at whether to give up


def encode(record: Record) -> bytes:
    """One JSON line. Field order is the dataclass order: the documented schema."""
    try:
        return orjson.dumps(record, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # Only values orjson refuses (integers beyond 64 bits, from odd bodies) come here.
        return _encode_slowly(record)


def _encode_slowly(record: Record) -> bytes:
    plain = {name: getattr(record, name) for name in record.__dataclass_fields__}
    try:
        return (json.dumps(plain, default=_fallback, ensure_ascii=False, allow_nan=False)
                + "\n").encode()
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError) as problem:
        # Decode leaves nothing that comes here; if a bug does, the line still goes out
        # (ASCII, no NaN), the value as text, saying why.
        for field in ("value", "raw", "headers"):
            if field in plain and plain[field] is not None:
                plain[field] = repr(plain[field])[:1000]
        plain["notes"] = [*plain.get("notes", []),
                          f"the value could not be written as JSON ({type(problem).__name__}); "
                          "written as text"]
        return (json.dumps(plain, default=_fallback, ensure_ascii=True, allow_nan=False)
                + "\n").encode()


def _fallback(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple):
        return list(value)
    return repr(value)[:1000]


class LineEncoder:
    """`encode` with a memory of the last record, so that stdout and --save share the work."""

    def __init__(self) -> None:
        self._record: Record | None = None
        self._line = b""

    def __call__(self, record: Record) -> bytes:
        if record is not self._record:
            self._record, self._line = record, encode(record)
        return self._line


class JsonlSink:
    """JSON lines into a file descriptor: the --save file, or stdout.

    Into a pipe or a terminal, whose reader may stall, lines go out in pieces the kernel
    takes whole once the descriptor is writable, so the loop keeps control: `give_up` (a
    stop that has waited long enough) ends a held-up flush at a line boundary with
    PartialFlush. At each tick a pipe whose reader left is noticed, with or without
    messages.
    """

    takes_records = True  # False for a copy: another sink hands it its lines

    def __init__(
        self, stream: BinaryIO, name: str, is_stdout: bool = False,
        encoder: Callable[[Record], bytes] | None = None, fsync: bool = False,
        give_up: Callable[[bool], bool] | None = None, copies: Sequence[JsonlSink] = (),
    ) -> None:
        self._copies = copies  # files that get the same lines first (--save), encoded once
        self._stream = stream
        self._fd = stream.fileno()
        self._name = name
        self._is_stdout = is_stdout
        self._encode = encoder or LineEncoder()
        self._pending = bytearray()
        self._ends: list[int] = []  # where each pending line ends in _pending
        self._fsync = fsync
        self._give_up = give_up or (lambda _cut: False)
        mode = os.fstat(self._fd).st_mode
        self._pipe = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
        # a reader on the other end may stall; a file or /dev/null never does
        self._careful = self._pipe or os.isatty(self._fd)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLOUT)
        if not self._careful:  # where a line's end need not be known: one step a record
            self.write = self._write_plain  # type: ignore[method-assign]

    @classmethod
    def open_file(
        cls, path: str, encoder: Callable[[Record], bytes] | None = None, fsync: bool = False
    ) -> JsonlSink:
        """Append to `path`, created 0600: saved observations may identify people (RFID).

        A file whose last line was cut (a crash, a full disk) gets its newline first, so
        that the next record does not run into it."""
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            stream = os.fdopen(descriptor, "r+b", buffering=0)
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                os.write(descriptor, b"\n")
        except OSError as problem:
            raise OutputFailure(f"cannot open {path} for --save: {problem.strerror}") from None
        return cls(stream, path, encoder=encoder, fsync=fsync)

    def write(self, record: Record) -> None:
        self._pending += self._encode(record)
        self._ends.append(len(self._pending))

    def _write_plain(self, record: Record) -> None:
        self._pending += self._encode(record)

    def flush(self) -> None:
        if not self._pending:
            return
        data, ends = self._pending, self._ends
        self._pending, self._ends = bytearray(), []
        for copy in self._copies:  # all of it, before stdout, which may take only part
            copy.put(data)
        self.put(data, ends)

    @property
    def may_stall(self) -> bool:
        """A reader may hold it up (a pipe, a terminal): it cannot be another sink's copy."""
        return self._careful

    def following(self) -> JsonlSink:
        """This file as a copy of another sink's lines (`copies`): it takes no records."""
        assert not self._careful
        self.takes_records = False
        return self

    def put(self, data: bytearray, ends: list[int] | None = None) -> None:
        """Lines written out (another sink's, for a copy), then fsynced if asked; where a
        reader may stall and the line ends are known, a piece at a time (see the class)."""
        try:
            if self._careful and ends is not None:
                self._write_carefully(data, ends)
            else:
                self._write_all(data)
            if self._fsync:  # on the disk, not just in the page cache, before the ack
                os.fsync(self._fd)
        except BrokenPipeError:
            raise PipeClosed() from None
        except OSError as problem:
            raise OutputFailure(f"cannot write to {self._name}: {problem.strerror}") from None

    def _write_all(self, data: bytearray) -> None:
        view = memoryview(data)
        done = 0
        while done < len(data):
            done += os.write(self._fd, view[done:])

    def _write_carefully(self, data: bytearray, ends: list[int]) -> None:
        view = memoryview(data)
        done, total = 0, len(data)
        while done < total:
            if not self._poll.poll(POLL_MS):  # the reader is not taking any
                at_line_end = done == 0 or ends[bisect.bisect_left(ends, done)] == done
                if self._give_up(not at_line_end):
                    raise PartialFlush(bisect.bisect_right(ends, done))
                continue
            # At most PIPE_BUF bytes, which a pipe that polls writable takes whole without
            # blocking, ending at a line's end unless one line alone is longer.
            last = bisect.bisect_right(ends, done + select.PIPE_BUF) - 1
            end = ends[last] if last >= 0 and ends[last] > done else done + select.PIPE_BUF
            done += os.write(self._fd, view[done:end])

    def tick(self, now: float) -> None:
        if self._pipe:  # a pipe whose reader left polls as an error, messages or not
            for _fd, events in self._poll.poll(0):
                if events & (select.POLLERR | select.POLLHUP):
                    raise PipeClosed()

    def close(self) -> None:
        self._pending.clear()  # never written means never acked: those messages stay queued
        self._ends.clear()
        if not self._is_stdout:
            self._stream.close()
