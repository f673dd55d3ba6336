"""Replay: JSON lines written by --save (or any easee-tail JSONL) as a source, so that the
same filters, table and sinks run on a capture without a broker.

Each line is parsed once, here: the source hands over a Delivery whose body is the line and
keeps the record it read, which its `record` method gives the pipeline as the decode step.
A line that is not a record easee-tail wrote is reported with its file and line number and
skipped; it never stops the replay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields
from sys import intern
from typing import Any, BinaryIO

import orjson

from easee_tail.model import Delivery, ErrorRecord, Observation, Record
from easee_tail.source import IDLE_TICK
from easee_tail.times import parse_time

MAX_BATCH = 500
_OBSERVATION_FIELDS = [field.name for field in fields(Observation)]
_ERROR_FIELDS = [field.name for field in fields(ErrorRecord)]
_TIMES = ("timestamp", "arrival", "received")
_REPEATED = ("kind", "name", "unit", "label", "type")


class NotARecord(ValueError):
    pass


_TEXT, _NUMBER, _INTEGER, _LIST = (str,), (int, float), (int,), (list,)
# What each field of a line easee-tail wrote can hold (None aside, where the schema allows
# it); `value` and an observation's `raw` hold anything.
_SHAPES: dict[str, tuple[tuple[type, ...], bool]] = {  # field: (types, may be null)
    "kind": (_TEXT, False), "charger": (_TEXT, True), "id": (_INTEGER, True),
    "name": (_TEXT, False), "unit": (_TEXT, True), "label": (_TEXT, True),
    "type": (_TEXT, True), "tags": (_LIST, True), "timestamp": (_TEXT, True),
    "arrival": (_TEXT, True), "received": (_TEXT, False), "latency_ms": (_NUMBER, True),
    "routing_key": (_TEXT, False), "redelivered": ((bool,), False), "notes": (_LIST, True),
    "error": (_TEXT, False), "raw_encoding": (_TEXT, False), "headers": ((dict,), False),
}


def _check_shapes(values: dict[str, Any], error: bool) -> None:
    for name, value in values.items():
        shape = _SHAPES.get(name)
        if shape is None or (name == "raw" and not error):
            continue
        types, nullable = shape
        if value is None and nullable:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise NotARecord(f"field {name!r} holds {type(value).__name__}, "
                             f"not {' or '.join(kind.__name__ for kind in types)}")
    if error and not isinstance(values.get("raw"), str):
        raise NotARecord("field 'raw' of an error record is not text")
    for name in ("tags", "notes"):
        if not all(isinstance(item, str) for item in values.get(name) or ()):
            raise NotARecord(f"field {name!r} holds something other than text")


def record_from_json(data: Any) -> Record:
    if not isinstance(data, dict):
        raise NotARecord("not a JSON object")
    names = _ERROR_FIELDS if data.get("kind") == "error" else _OBSERVATION_FIELDS
    missing = [name for name in names if name not in data]
    if missing:
        raise NotARecord(f"not an easee-tail record (no {', '.join(missing[:3])})")
    values = {name: data[name] for name in names}
    _check_shapes(values, names is _ERROR_FIELDS)
    for name in _TIMES:
        if name in values and values[name] is not None:
            values[name] = parse_time(values[name])
    if values["received"] is None:
        raise NotARecord("no valid received time")
    if names is _ERROR_FIELDS:
        return ErrorRecord(**values)
    values["tags"] = tuple(intern(tag) for tag in values["tags"] or ())
    values["notes"] = list(values["notes"] or [])
    for name in _REPEATED:  # the same few texts on every line: one copy each, for the views
        if values[name] is not None:
            values[name] = intern(values[name])
    return Observation(**values)


class ReplaySource:
    queue = "(replay)"
    status: str | None = None

    def __init__(
        self, files: Sequence[tuple[str, BinaryIO]], speed: float | None,
        report: Callable[[str], None],
    ) -> None:
        """`speed`: None for as fast as possible, else 1.0 for the original pace, 2.0 twice
        as fast. `report` is told about every line skipped."""
        self._files = files
        self._speed = speed
        self._report = report
        self.server = "replay of " + ", ".join(name for name, _ in files)
        self._read: dict[int, Record] = {}  # handed over, not yet taken by `record`

    def record(self, delivery: Delivery) -> Record:
        """The decode step: the record read from the delivery's line."""
        return self._read.pop(delivery.tag)

    def batches(self) -> Iterator[Sequence[Delivery]]:
        tag = 0
        first_moment: float | None = None
        started = time.monotonic()
        batch: list[Delivery] = []
        for name, stream in self._files:
            for number, line in enumerate(stream, start=1):
                record = self._parse(name, number, line)
                if record is None:
                    continue
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

    def _parse(self, name: str, number: int, line: bytes) -> Record | None:
        """The line's record, or None after reporting it as skipped."""
        if not line.strip():
            return None
        try:
            return record_from_json(orjson.loads(line))
        except (orjson.JSONDecodeError, NotARecord, TypeError) as problem:
            reason = "not JSON" if isinstance(problem, orjson.JSONDecodeError) else str(problem)
            self._report(f"{name}:{number}: skipped: {reason}")
            return None

    def ack_through(self, tag: int) -> None:
        pass  # a file has nothing to acknowledge

    def close(self) -> None:
        for _name, stream in self._files:
            stream.close()


def open_files(paths: Iterable[str], stdin: BinaryIO) -> list[tuple[str, BinaryIO]]:
    opened: list[tuple[str, BinaryIO]] = []
    for path in paths:
        opened.append(("stdin", stdin) if path == "-" else (path, open(path, "rb")))  # noqa: SIM115
    return opened


def read_records(files: Sequence[tuple[str, BinaryIO]],
                 report: Callable[[str], None]) -> Iterator[Record]:
    """Every record of the captures, as fast as they read, for the commands that analyse."""
    source = ReplaySource(files, None, report)
    try:
        for batch in source.batches():
            for delivery in batch:
                yield source.record(delivery)
    finally:
        source.close()
