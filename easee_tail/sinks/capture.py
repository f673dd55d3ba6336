"""The --save file when it is compressed (FILE.jsonl.gz, FILE.jsonl.zst) or rotated
(--rotate SIZE|DURATION), as tcpdump's -C and -G: a new file, named with the time of its
first line, once the current one is that large or that old.

No loss, as for a plain --save: lines are buffered until `flush`, which the loop calls
before each acknowledgement; a flush pushes them through the compressor to the file (a
gzip sync flush, a zstd block), so everything acknowledged decompresses from the file even
if the process is killed the next moment. A switch of files happens between two lines,
never inside one: a file is finished (its gzip trailer, its zstd frame end) before the
next is begun. A compressed file is never appended to: a crash may have cut its last
frame, and what followed would not decompress.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from easee_tail.errors import OutputFailure
from easee_tail.model import Record


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self, mode: int = ...) -> bytes: ...


@dataclass(frozen=True)
class Rotation:
    """When to start a new file: at this many bytes on disk, or this many seconds after
    the current file's first line (either, or both)."""

    size: int | None = None
    seconds: float | None = None


def compression_for(path: str) -> str:
    """"gzip", "zstd" or "" (plain), by the file name's ending."""
    if path.endswith(".gz"):
        return "gzip"
    if path.endswith(".zst"):
        return "zstd"
    return ""


class _Codec:
    """The compressor of one file, with the flushes that make a sync point and an end."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._compressor: _Compressor | None = None
        if kind == "gzip":
            self._compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
            self._sync, self._end = zlib.Z_SYNC_FLUSH, zlib.Z_FINISH
        elif kind == "zstd":
            import zstandard
            self._compressor = zstandard.ZstdCompressor(level=3).compressobj()
            self._sync = zstandard.COMPRESSOBJ_FLUSH_BLOCK
            self._end = zstandard.COMPRESSOBJ_FLUSH_FINISH

    def through(self, data: bytes) -> bytes:
        """`data` compressed up to a point from which everything decompresses."""
        if self._compressor is None:
            return data
        return self._compressor.compress(data) + self._compressor.flush(self._sync)

    def end(self) -> bytes:
        return b"" if self._compressor is None else self._compressor.flush(self._end)


class CaptureSink:
    """JSON lines into a compressed or rotated --save file (the plain, single file is
    JsonlSink's)."""

    def __init__(self, path: str, encoder: Callable[[Record], bytes], fsync: bool = False,
                 rotation: Rotation | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._path = path
        self._encode = encoder
        self._fsync = fsync
        self._rotation = rotation
        self._clock = clock
        self._kind = compression_for(path)
        self._pending = bytearray()
        self._fd: int | None = None
        self._name = path
        self._codec = _Codec(self._kind)
        self._written = 0  # bytes on disk in the current file
        self._began: float | None = None  # the received time of its first line
        if rotation is None:
            self._open(path)

    @property
    def name(self) -> str:
        """The file being written now."""
        return self._name

    def _open(self, path: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        if self._kind or self._rotation is not None:
            flags |= os.O_EXCL  # never appended to: see the module's text
        try:
            self._fd = os.open(path, flags, 0o600)
        except FileExistsError:
            if self._rotation is not None:
                raise
            raise OutputFailure(
                f"{path} exists: a compressed capture is not appended to (a crash may have "
                "cut its last frame); give a new name, or --rotate to name files by time"
            ) from None
        except OSError as problem:
            raise OutputFailure(f"cannot open {path} for --save: {problem.strerror}") from None
        self._name, self._codec, self._written = path, _Codec(self._kind), 0

    def write(self, record: Record) -> None:
        if self._rotation is not None:
            self._rotate_if_due(record)
        self._pending += self._encode(record)

    def _rotate_if_due(self, record: Record) -> None:
        moment = record.received.timestamp()
        rotation = self._rotation
        assert rotation is not None
        if self._fd is not None:
            size = self._written + len(self._pending)
            due = (rotation.size is not None and size >= rotation.size) or (
                rotation.seconds is not None and self._began is not None
                and moment - self._began >= rotation.seconds)
            if not due:
                return
            self._finish()
        self._began = moment
        self._open_rotated(record.received)

    def _open_rotated(self, first: datetime) -> None:
        stem, dot, suffix = os.path.basename(self._path).partition(".")
        folder = os.path.dirname(self._path)
        moment = first.astimezone(UTC)
        for attempt in range(1000):
            # the same microsecond again (a batch received at once) gets _001, _002: names
            # still sort in time order
            stamp = (moment.replace(microsecond=0).strftime("%Y%m%dT%H%M%S")
                     + f".{moment.microsecond:06d}Z" + (f"_{attempt:03d}" if attempt else ""))
            path = os.path.join(folder, f"{stem}-{stamp}{dot}{suffix}")
            try:
                self._open(path)
                return
            except FileExistsError:
                continue
        raise OutputFailure(f"cannot find a free name for the next --save file beside {path}")

    def flush(self) -> None:
        if self._fd is None or not self._pending:
            return
        data = self._codec.through(bytes(self._pending))
        self._pending.clear()
        self._put(data)
        if self._fsync:
            os.fsync(self._fd)

    def _put(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, view[done:])
        except OSError as problem:
            raise OutputFailure(f"cannot write to {self._name}: {problem.strerror}") from None
        self._written += len(data)

    def _finish(self) -> None:
        """Everything pending and the compressed stream's end into the current file."""
        if self._fd is None:
            return
        tail = self._codec.through(bytes(self._pending)) if self._pending else b""
        self._pending.clear()
        self._put(tail + self._codec.end())
        if self._fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None

    def tick(self, now: float) -> None:
        pass

    def close(self) -> None:
        """The end of the stream written after the last flushed line (never-flushed lines
        were never acknowledged: they are left out, and stay queued)."""
        self._pending.clear()
        if self._fd is not None:
            try:
                self._put(self._codec.end())
            finally:
                os.close(self._fd)
                self._fd = None
