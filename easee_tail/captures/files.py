"""Opening captures: plain, gzip and zstd files (told apart by their first bytes, not their
names), several files, a folder of rotated files, and stdin, each as a stream of blocks.

A block is a run of whole lines (the reader cuts at the last newline and keeps the rest for
the next block). A compressed file may hold several members or frames, one per run that
wrote it; a compressed file that ends in the middle of one (a capture cut by a crash, or
still being written) gives everything before the cut and says so once, with what was lost.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from easee_tail.errors import NotACapture

BLOCK = 1 << 22  # bytes read at a time: large enough for the scan to run at memory speed
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
Block = tuple["bytes | mmap.mmap", int, int]  # a buffer, and where its whole lines start, end
CAPTURE_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".gz", ".zst", ".ndjson")


class _Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


def _gzip() -> _Decompressor:
    return zlib.decompressobj(wbits=31)


def _zstd() -> _Decompressor:
    import zstandard  # only for .zst captures
    return zstandard.ZstdDecompressor().decompressobj()


@dataclass
class Capture:
    """One file (or stdin) of a capture: its name, its size on disk where known, and how it
    is compressed ("" for plain)."""

    name: str
    stream: BinaryIO
    size: int | None
    compression: str
    read_so_far: int = 0  # bytes of the file itself (compressed) read, for progress
    seekable: bool = False

    @property
    def mapped(self) -> bool:
        """Read through a memory map (a plain file): blocks are windows on the file itself,
        with no copy, and a line's place is its byte offset."""
        return self.seekable and not self.compression and bool(self.size)

    def blocks(self, warn: Callable[[str], None], start: int = 0) -> Iterator[Block]:
        """Runs of whole lines, as (buffer, start, end); `start`: where to begin in a plain
        file (a line's beginning)."""
        if self.mapped:
            yield from self._windows(warn, start)
            return
        chunks = self._decompressed(warn) if self.compression else self._read()
        for block in _whole_lines(chunks, self.name, warn, cut_warns=bool(self.compression)):
            yield block, 0, len(block)

    def _windows(self, warn: Callable[[str], None], start: int) -> Iterator[Block]:
        view = mmap.mmap(self.stream.fileno(), 0, flags=mmap.MAP_SHARED,
                         prot=mmap.PROT_READ)
        try:
            size = len(view)
            while start < size:
                end = view.rfind(b"\n", start, start + BLOCK) + 1
                if end <= start:  # one line longer than a block
                    end = view.find(b"\n", start + BLOCK) + 1 or size
                self.read_so_far = end
                yield view, start, end
                # the pages read stay in the page cache, not in this process's memory
                page = start - start % mmap.PAGESIZE
                view.madvise(mmap.MADV_DONTNEED, page, end - page - (end - page) % mmap.PAGESIZE)
                start = end
        finally:
            view.close()

    def _read(self) -> Iterator[bytes]:
        while chunk := self.stream.read(BLOCK):
            self.read_so_far += len(chunk)
            yield chunk

    def _decompressed(self, warn: Callable[[str], None]) -> Iterator[bytes]:
        make = _gzip if self.compression == "gzip" else _zstd
        decompressor = make()
        fed = False  # bytes given to the member or frame now being read
        while True:
            chunk = self.stream.read(BLOCK)
            if not chunk:
                break
            self.read_so_far += len(chunk)
            while chunk:
                try:
                    out = decompressor.decompress(chunk)
                except (zlib.error, _zstd_error()) as problem:
                    warn(f"{self.name}: not readable as {self.compression} after "
                         f"{self.read_so_far:,} bytes ({problem}); what came before is read")
                    return
                fed = True
                if out:
                    yield out
                if decompressor.eof:  # the next member or frame, if any, follows
                    chunk = decompressor.unused_data
                    decompressor, fed = make(), False
                else:
                    chunk = b""
        if fed:
            warn(f"{self.name}: the {self.compression} stream ends in the middle (cut by a "
                 "crash, or still being written); the lines before the cut are read")

    def close(self) -> None:
        if self.name != "stdin":
            self.stream.close()


def _zstd_error() -> type[Exception]:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a dependency
        return zlib.error
    return zstandard.ZstdError


def _whole_lines(chunks: Iterator[bytes], name: str, warn: Callable[[str], None],
                 cut_warns: bool) -> Iterator[bytes]:
    """The chunks cut at their last newline, the rest carried to the next. A last line
    without a newline is a line (a plain file may end so); after a compressed stream's cut
    it is part of a line the cut took, and is left out with a word."""
    rest = b""
    for chunk in chunks:
        end = chunk.rfind(b"\n")
        if end < 0:
            rest += chunk
            continue
        if rest:
            yield rest + chunk[:end + 1]
        else:
            yield chunk[:end + 1] if end + 1 < len(chunk) else chunk
        rest = chunk[end + 1:]
    if rest.strip():
        if cut_warns:
            warn(f"{name}: its last {len(rest):,} bytes are not a whole line; left out")
        else:
            yield rest + b"\n"


def compression_of(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


def open_capture(path: str, stdin: BinaryIO) -> Capture:
    if path == "-":
        head = stdin.peek(4)[:4] if hasattr(stdin, "peek") else b""
        return Capture("stdin", stdin, None, compression_of(head))
    stream = open(path, "rb")  # noqa: SIM115 - closed by Capture.close
    head = stream.read(4)
    stream.seek(0)
    size = os.fstat(stream.fileno()).st_size
    return Capture(path, stream, size, compression_of(head), seekable=True)


def capture_paths(paths: Sequence[str]) -> list[str]:
    """The paths given, a folder standing for the captures in it, oldest first: rotated
    files are named with the time of their first line, so their names sort in time order."""
    found: list[str] = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            inside = sorted(
                os.path.join(path, name) for name in os.listdir(path)
                if name.endswith(CAPTURE_SUFFIXES) and not name.startswith(".")
                and os.path.isfile(os.path.join(path, name)))
            found.extend(inside)
        else:
            found.append(path)
    return found


def open_captures(paths: Sequence[str], stdin: BinaryIO) -> list[Capture]:
    opened: list[Capture] = []
    path = ""
    try:
        for path in capture_paths(paths):
            opened.append(open_capture(path, stdin))
    except OSError as problem:
        for capture in opened:
            capture.close()
        raise NotACapture(f"cannot read {path}: {problem.strerror}") from None
    return opened
