"""Reading captures fast: the bytes are looked at before a line is parsed.

Every line of a capture names its charger and its observation id in plain bytes, so a
question about a few chargers, or about the few observations a story tells, finds its
lines with one scan of each block (C speed, as grep) and parses only those. The scan is a
sieve, never the judge: it keeps every line the question could want (and a few more), and
the filters decide on the parsed record as they always do.

- Chargers: each serial pattern's longest run of plain letters, as typed and in capitals
  (the Easee cloud's serials are capitals; a capture that spells a serial otherwise is
  found in those spellings only). A pattern with no such run (`*`) or a negated one alone
  sieves nothing.
- Observation ids: `"id":N` (or `"id": N`) for the ids wanted.
- A line the filters would keep whatever they ask (`"charger":null`, `"kind":"error"`, as
  easee-tail and `jq -c` write them) is always let through.
- Time (`--since`/`--until` judged on a clock that follows the receive order): a plain file
  is entered by a binary search on its lines' received times, and left at the first block
  past the window. Captures are written in receive order. The caller turns its window into
  received times: one on the charger's clock starts `CLOCK_SLACK` earlier (a clock may run
  ahead), and only one on the received clock has an end to stop at (a message may come
  any time after its charger sent it: a backlog, a replay of old values).

The first line of every file is always parsed, so that a file which is no capture is told
as such even when nothing in it would pass the sieve. Lines that are not records are
reported: the first few with their place, then one summary line at the end.
"""

from __future__ import annotations

import mmap
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from easee_tail.captures.files import Capture
from easee_tail.captures.records import NotARecord, record_from_json
from easee_tail.errors import NotACapture
from easee_tail.model import Record
from easee_tail.times import parse_time

REPORTED = 3  # skipped lines reported one by one; the rest are counted
PLACES = 5  # where the next few were, in the summary
CLOCK_SLACK = 600.0  # seconds a charger's clock may run ahead of the receive order
GLOB = re.compile(r"[*?\[\]!]")
_RECEIVED = re.compile(rb'"received"\s*:\s*"([^"]{10,40})"')


@dataclass(frozen=True)
class Sieve:
    """What a question needs from a capture, for the scan before parsing."""

    chargers: tuple[str, ...] = ()  # the serial patterns wanted (none: every charger)
    ids: frozenset[int] | None = None  # the observation ids wanted (None: every id)
    since: float | None = None  # epoch seconds, on the received clock: lines received
    until: float | None = None  # before or after are not read where the file allows
    unnamed: bool = True  # also the lines that filters keep whatever they ask for (a line
    # with no charger, an error record): a replay shows them; a story tells none of them

    def finders(self) -> list[Finder] | None:
        """Searches whose hits together are every line wanted (each a literal or a
        pattern with a literal start, which the scan finds at memory speed; one
        alternation would be ten times slower); None to parse every line."""
        if self.chargers:
            needles: set[bytes] = set()
            for pattern in self.chargers:
                runs = [run for run in GLOB.split(pattern) if run]
                if not runs:
                    return self._id_finders()  # `*` wants every charger
                longest = max(runs, key=len).encode("utf-8", "replace")
                needles |= {longest, longest.upper()}
            # a line with no charger passes the charger filters, so it passes here too
            return [*(_literal(needle) for needle in sorted(needles)),
                    *([_literal(b'"charger":null')] if self.unnamed else [])]
        return self._id_finders()

    def _id_finders(self) -> list[Finder] | None:
        if self.ids is None:
            return None
        numbers = b"|".join(str(number).encode() for number in sorted(self.ids)) or b"(?!)"
        ids = re.compile(rb'"id"\s*:\s*(?:' + numbers + rb")(?![0-9.eE])")
        # an error record with no id passes the observation filters, so it passes here too
        return [_regex(ids), *([_literal(b'"kind":"error"')] if self.unnamed else [])]


Buffer = bytes | mmap.mmap
Finder = Callable[[Buffer, int, int], int]  # (buffer, from, to) -> the next hit, or -1


@dataclass(slots=True)
class _Hit:
    find: Finder
    at: int  # where its next hit in the block starts; -1: none left


def _literal(needle: bytes) -> Finder:
    def find(buffer: Buffer, start: int, end: int) -> int:
        return buffer.find(needle, start, end)
    return find


def _regex(pattern: re.Pattern[bytes]) -> Finder:
    def find(buffer: Buffer, start: int, end: int) -> int:
        match = pattern.search(buffer, start, end)
        return -1 if match is None else int(match.start())
    return find


Skip = tuple[int, int, str, str]  # (which file, line number, file name, reason)


@dataclass
class Skips:
    """Lines that are not records: the first few told at once, the rest counted."""

    warn: Callable[[str], None]
    count: int = 0
    first: list[Skip] = field(default_factory=list)  # the first few, in file order

    def skip(self, skip: Skip) -> None:
        self.count += 1
        if len(self.first) < REPORTED + PLACES:
            self.first.append(skip)
        if self.count <= REPORTED:
            self.warn(_told(skip))

    def absorb(self, parts: Sequence[tuple[int, Sequence[Skip]]]) -> None:
        """The skips of readers that each read a share of the same files (count, first
        few), told as one reader in file order would have told them."""
        self.first = sorted(skip for _count, first in parts for skip in first
                            )[:REPORTED + PLACES]
        self.count = sum(count for count, _first in parts)
        for skip in self.first[:REPORTED]:
            self.warn(_told(skip))

    def summary(self) -> str | None:
        more = self.count - REPORTED
        if more <= 0:
            return None
        places = [f"{name}:{number}" for _index, number, name, _reason
                  in self.first[REPORTED:]]
        return (f"skipped {more:,} more line{'s' if more != 1 else ''} that are not records "
                f"(from {', '.join(places)}{', …' if more > len(places) else ''})")


def _told(skip: Skip) -> str:
    _index, number, name, reason = skip
    return f"{name}:{number}: skipped: {reason}"


@dataclass
class Tally:
    records: int = 0  # lines read as records
    lines_seen: int = 0  # lines parsed (records or not)
    lines: int = 0  # lines in the blocks read (counted only where asked: `count_lines`)


class Reader:
    """The records of captures that a sieve lets through, file after file, in file order.
    `lines()` gives each with the line it was read from (replay hands both on)."""

    def __init__(self, captures: Sequence[Capture], sieve: Sieve,
                 warn: Callable[[str], None],
                 advance: Callable[[int], None] | None = None,
                 share: tuple[int, int] | None = None, count_lines: bool = False) -> None:
        """`advance` is told how many bytes of the files each block took (for progress);
        `share` (i, n): parse only the lines of the chargers that fall to share i of n
        (see split.py), and of the lines that name none, only in share 0; `count_lines`:
        count the lines of every block, those the sieve passes over too (replay's tally)."""
        self.captures = captures
        self.sieve = sieve
        self.warn = warn
        self.skips = Skips(warn)
        self.tally = Tally()
        self.advance = advance
        self._finders = sieve.finders()
        self._share = share
        self._count_lines = count_lines

    def records(self) -> Iterator[Record]:
        for read in self.lines():
            if read is not None:
                yield read[0]

    def lines(self, beats: bool = False) -> Iterator[tuple[Record, bytes] | None]:
        """Each record with its line; with `beats`, also None after every block, so that a
        consumer gets control back while a long stretch of the file has nothing for it (a
        replay's loop sees a signal, ticks its sinks)."""
        for capture in self.captures:
            yield from self.read(capture, beats)

    def read(self, capture: Capture, beats: bool = False
             ) -> Iterator[tuple[Record, bytes] | None]:
        """One capture's records (and None after each block, with `beats`)."""
        sieve, finders = self.sieve, self._finders
        start = 0
        if sieve.since is not None and capture.mapped:
            start = _first_at(capture, sieve.since)
        place = _Place(capture, self.captures.index(capture))
        checked = start != 0  # the file's first line is parsed whatever the sieve says
        advance, told = self.advance, capture.read_so_far
        for buffer, low, high in capture.blocks(self.warn, start):
            if advance is not None:
                advance(capture.read_so_far - told)
                told = capture.read_so_far
            if sieve.until is not None and _starts_after(buffer, low, high, sieve.until):
                return
            place.block(buffer, low)
            if self._count_lines:
                self.tally.lines += _newlines(buffer, low, high)
            if not checked:
                checked = True
                end = _line_end(buffer, low, high)
                parsed = self._parse(place, low, buffer[low:end])
                if parsed is not None:
                    yield parsed
                low = end + 1
            if finders is None:
                at = low
                for line in buffer[low:high].split(b"\n"):
                    parsed = self._parse(place, at, line)
                    if parsed is not None:
                        yield parsed
                    at += len(line) + 1
            else:
                yield from self._sieved(place, buffer, low, high, finders)
            place.done(high)
            if beats:
                yield None

    def _sieved(self, place: _Place, buffer: bytes | mmap.mmap, low: int, high: int,
                finders: list[Finder]) -> Iterator[tuple[Record, bytes]]:
        rfind = buffer.rfind
        hits = [_Hit(finder, finder(buffer, low, high)) for finder in finders]
        hits = [hit for hit in hits if hit.at >= 0]
        while hits:
            first = min(hit.at for hit in hits) if len(hits) > 1 else hits[0].at
            begin = max(rfind(b"\n", low, first) + 1, low)
            end = _line_end(buffer, first, high)
            parsed = self._parse(place, begin, buffer[begin:end])
            if parsed is not None:
                yield parsed
            for hit in hits:  # every search on to the line after this one
                if hit.at <= end:
                    hit.at = hit.find(buffer, end + 1, high)
            if any(hit.at < 0 for hit in hits):
                hits = [hit for hit in hits if hit.at >= 0]

    def _parse(self, place: _Place, at: int, line: bytes) -> tuple[Record, bytes] | None:
        """The line's record; `at`: where it starts in its block's buffer."""
        if not line.strip() or (self._share is not None and not _mine(line, *self._share)):
            return None
        self.tally.lines_seen += 1
        try:
            record = record_from_json(orjson.loads(line))
        except (orjson.JSONDecodeError, NotARecord, TypeError) as problem:
            reason = "not JSON" if isinstance(problem, orjson.JSONDecodeError) else str(problem)
            self.skips.skip((place.index, place.number(at), place.capture.name, reason))
            return None
        self.tally.records += 1
        return record, line

    def check(self) -> None:
        """Raise NotACapture when lines were read and not one was a record."""
        if self.tally.records == 0 and self.skips.count:
            names = ", ".join(capture.name for capture in self.captures)
            raise NotACapture(f"nothing in {names} is an easee-tail record "
                              f"({self.skips.count:,} lines skipped)")

    def passed_over(self) -> int:
        """Lines counted that were never parsed (the sieve let them pass)."""
        return max(0, self.tally.lines - self.tally.lines_seen) if self._count_lines else 0

    def finish(self) -> None:
        """The summary of what was skipped, once everything is read."""
        summary = self.skips.summary()
        if summary:
            self.warn(summary)
        for capture in self.captures:
            capture.close()


def _mine(line: bytes, share: int, shares: int) -> bool:
    """Whether the line's charger falls to this share (by its serial's bytes, in capitals,
    so that every line of a charger falls to the same share)."""
    begin = line.find(b'"charger":"')
    if begin < 0:
        return share == 0
    begin += 11
    return zlib.crc32(line[begin:line.find(b'"', begin)].upper()) % shares == share


def _newlines(buffer: Buffer, low: int, high: int) -> int:
    if isinstance(buffer, bytes):
        return buffer.count(b"\n", low, high)
    return buffer[low:high].count(b"\n")  # a map has no count: a block's copy


def _line_end(buffer: bytes | mmap.mmap, at: int, high: int) -> int:
    """Where the line that `at` is in ends (its newline, or the block's end)."""
    end = buffer.find(b"\n", at, high)
    return high if end < 0 else end


class _Place:
    """Where the reading is in a file, for naming a skipped line by its number. A mapped
    file's lines are counted only when a line must be named (from the last one named on);
    a stream's as its blocks go by."""

    def __init__(self, capture: Capture, index: int) -> None:
        self.capture, self.index = capture, index
        self.mapped = capture.mapped
        self._lines = 0  # lines before `_counted_to` (mapped) or before the block (streams)
        self._counted_to = 0
        self._buffer: bytes | mmap.mmap = b""
        self._low = 0

    def block(self, buffer: bytes | mmap.mmap, low: int) -> None:
        self._buffer, self._low = buffer, low

    def done(self, high: int) -> None:
        """The block (from where `block` said) is read up to `high`."""
        if not self.mapped:
            self._lines += _newlines(self._buffer, self._low, high)

    def number(self, at: int) -> int:
        """The number of the line that starts at `at` in the current block."""
        buffer = self._buffer
        if not self.mapped:
            return self._lines + _newlines(buffer, self._low, at) + 1
        for begin in range(self._counted_to, at, 1 << 22):
            self._lines += buffer[begin:min(at, begin + (1 << 22))].count(b"\n")
        self._counted_to = max(self._counted_to, at)
        return self._lines + 1


def received_at(line: bytes) -> float | None:
    """The received time of a line, from its bytes (None when it has none readable)."""
    match = _RECEIVED.search(line)
    if match is None:
        return None
    moment = parse_time(match.group(1).decode("ascii", "replace"))
    return moment.timestamp() if isinstance(moment, datetime) else None


def _starts_after(buffer: bytes | mmap.mmap, low: int, high: int, until: float) -> bool:
    """Whether the block's first line was received after `until`: then nothing from here
    on is in the window."""
    first = received_at(buffer[low:_line_end(buffer, low, high)])
    return first is not None and first > until


def _first_at(capture: Capture, since: float) -> int:
    """The offset of a line at or before the first one received at `since`: a binary search
    on the lines' received times. Lines with no readable time are stepped over; when
    nothing can be judged, 0."""
    stream, size = capture.stream, capture.size or 0
    target = since
    low, high = 0, size  # the line at `low` is before the target, or the file's start
    while high - low > 1 << 16:
        middle = (low + high) // 2
        stream.seek(middle)
        stream.readline()  # the rest of a line cut by the seek
        offset = stream.tell()
        moment = None
        for _ in range(64):  # the next line with a time
            line = stream.readline()
            if not line:
                break
            moment = received_at(line)
            if moment is not None:
                break
        if moment is None or moment >= target:
            high = middle
        else:
            low = offset
    stream.seek(0)
    return low
