"""JSON lines: one object per record, to stdout or to the --save file.

The one JSON encoder of the project. Lines are buffered and written on `flush`, which the
loop calls before every acknowledgement, so a line is out before its message is acked.

Each line is copied into one growing buffer at once rather than kept as its own bytes
object until the flush: holding hundreds of freshly allocated lines made every encode
about three times slower (allocator churn; bench/run row 2 shows it).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import BinaryIO

import orjson

from easee_tail.errors import OutputFailure
from easee_tail.model import Record
from easee_tail.sinks import PipeClosed

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE


def encode(record: Record) -> bytes:
    """One JSON line. Field order is the dataclass order: the documented schema."""
    try:
        return orjson.dumps(record, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # Only values orjson refuses (integers beyond 64 bits, from odd bodies) come here.
        return _encode_slowly(record)


def _encode_slowly(record: Record) -> bytes:
    plain = {name: getattr(record, name) for name in record.__dataclass_fields__}
    return (json.dumps(plain, default=_fallback, ensure_ascii=False) + "\n").encode()


def _fallback(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple):
        return list(value)
    return str(value)


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
    def __init__(
        self, stream: BinaryIO, name: str, is_stdout: bool = False,
        encoder: LineEncoder | None = None, fsync: bool = False,
    ) -> None:
        self._stream = stream
        self._name = name
        self._is_stdout = is_stdout
        self._encode = encoder or LineEncoder()
        self._pending = bytearray()
        self._fsync = fsync

    @classmethod
    def open_file(
        cls, path: str, encoder: LineEncoder | None = None, fsync: bool = False
    ) -> JsonlSink:
        """Append to `path`, created 0600: saved observations may identify people (RFID)."""
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            stream = os.fdopen(descriptor, "ab")
        except OSError as problem:
            raise OutputFailure(f"cannot open {path} for --save: {problem.strerror}") from None
        return cls(stream, path, encoder=encoder, fsync=fsync)

    def write(self, record: Record) -> None:
        self._pending += self._encode(record)

    def flush(self) -> None:
        if not self._pending:
            return
        data, self._pending = self._pending, bytearray()
        try:
            self._stream.write(data)
            self._stream.flush()
            if self._fsync:  # on the disk, not just in the page cache, before the ack
                os.fsync(self._stream.fileno())
        except BrokenPipeError:
            raise PipeClosed() from None
        except OSError as problem:
            raise OutputFailure(f"cannot write to {self._name}: {problem.strerror}") from None

    def tick(self, now: float) -> None:
        pass

    def close(self) -> None:
        self._pending.clear()  # never written means never acked: those messages stay queued
        if not self._is_stdout:
            self._stream.close()
