"""A capture's line as a record: JSON lines easee-tail wrote (--save, or any of its JSONL)
read back into the Observation or ErrorRecord they were written from, checked field by
field, so that a line from elsewhere is refused with a reason rather than half-read.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from sys import intern
from typing import Any

import orjson

from easee_tail.catalogue import load
from easee_tail.decode import PRODUCT_UPDATE, decode
from easee_tail.model import Delivery, ErrorRecord, Observation, Record
from easee_tail.times import parse_time

# every line has these; the later fields (stale, repeated) came with a later version: a
# line without them says false
_OBSERVATION_FIELDS = [field.name for field in fields(Observation) if field.default is MISSING]
_LATER_FIELDS = [field.name for field in fields(Observation) if field.default is not MISSING]
_ERROR_FIELDS = [field.name for field in fields(ErrorRecord)]
_TIMES = ("timestamp", "arrival", "received")
_REPEATED = ("kind", "name", "unit", "label", "type")


class NotARecord(ValueError):
    pass


def _product_update(data: dict[str, Any]) -> Record:
    """A line of SignalR's ProductUpdate shape (an evcc or pyeasee log, a bridge's capture):
    decoded as a message with that body would be, received when its timestamp says."""
    at = parse_time(data.get("timestamp"))
    if at is None:
        raise NotARecord("a ProductUpdate without a valid timestamp")
    return decode(Delivery(f"{data['mid']}.O.{data['id']}", orjson.dumps(data), None,
                           at.timestamp()), load())


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
    "stale": ((bool,), False), "repeated": ((bool,), False),
}


def _checks(names: list[str]) -> list[tuple[str, frozenset[type]]]:
    """Each field's exact types, null among them where allowed: orjson gives exact builtin
    types (a bool is never an int there), so a set lookup decides what isinstance would."""
    return [(name, frozenset((*_SHAPES[name][0], *((type(None),) if _SHAPES[name][1]
                                                      else ()))))
            for name in names if name in _SHAPES]


_CHECKS = {False: _checks(_OBSERVATION_FIELDS), True: _checks(_ERROR_FIELDS)}


def _check_shapes(values: dict[str, Any], error: bool) -> None:
    for name, allowed in _CHECKS[error]:
        value = values[name]
        if type(value) not in allowed:
            types = _SHAPES[name][0]
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
    if "kind" not in data and data.keys() >= PRODUCT_UPDATE:
        return _product_update(data)
    names = _ERROR_FIELDS if data.get("kind") == "error" else _OBSERVATION_FIELDS
    try:
        values = {name: data[name] for name in names}
    except KeyError:
        missing = [name for name in names if name not in data]
        raise NotARecord(f"not an easee-tail record (no {', '.join(missing[:3])})") from None
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
    for name in _LATER_FIELDS:
        later = data.get(name, False)
        if type(later) is not bool:
            raise NotARecord(f"field {name!r} holds {type(later).__name__}, not bool")
        values[name] = later
    return Observation(**values)
