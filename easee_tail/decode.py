"""Delivery -> Observation | ErrorRecord. Pure functions, no I/O.

The routing key says what a message is (`<serial>.O.<id>`, `<serial>.CR.<cmd>.<ticks>`,
`<serial>.P`, `<serial>.OP.<type>`); the body carries Timestamp and Value; the catalogue
gives name, type, unit and labels. Anything unreadable becomes an ErrorRecord that keeps
the raw body: nothing raises, nothing is dropped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import orjson

from easee_tail.catalogue import REVERSED_TOKEN_ID, Catalogue, ObservationType
from easee_tail.defaults import STALE_AFTER
from easee_tail.model import Delivery, ErrorRecord, Headers, Observation, Record, RecordKind
from easee_tail.times import CLOCK_SKEW_MS, parse_time, span

# Masterloop data type codes, as a body's DataType may carry them.
DATA_TYPE_CODES = {
    1: "Binary", 2: "Boolean", 3: "Double", 4: "Integer",
    5: "Position", 6: "String", 7: "Statistics",
}
_OTHER_KINDS: dict[str, tuple[RecordKind, str]] = {
    "CR": ("command_response", "CommandResponse"),
    "P": ("pulse", "Pulse"),
    "OP": ("package", "ObservationPackage"),
}
_MISSING = object()
_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})
# the type a JSON value has by itself: one some source gives an observation is taken as is
_NATURAL = {float: "Double", int: "Integer", bool: "Boolean", str: "String"}
# SignalR's ProductUpdate, as evcc, pyeasee and node-red read it: every value as text
PRODUCT_UPDATE = frozenset({"mid", "dataType", "id", "value"})

NEGATIVE_LATENCY_NOTE = "negative latency: the clocks of the Easee cloud and this machine disagree"


def skew_note(latency_ms: float) -> str:
    """ArrivalTime well ahead of the local clock: the clock here is behind, not latency."""
    return (f"ArrivalTime is {-latency_ms / 1000:.1f} s ahead of this machine's clock: this "
            "clock is behind (not latency)")


SURROGATE_NOTE = "text held a lone surrogate (not valid Unicode): replaced by U+FFFD"
_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins pairs: what is left is lone
_MICROSECOND = timedelta(microseconds=1)  # latency: whole microseconds, divided once
MAX_DEPTH = 64  # JSON nested deeper is unreadable: no real message nests a tenth of it


class _Unreadable(Exception):
    """Raised inside this module only; turned into an ErrorRecord at the top."""


def decode(delivery: Delivery, catalogue: Catalogue,
           stale_after: float = STALE_AFTER) -> Record:
    """The record a delivery makes: the usual message in a straight line, everything else
    (and anything odd about the usual) on the careful path, which notes what it tolerated.
    A Timestamp more than `stale_after` seconds before the ArrivalTime is stale."""
    stale = timedelta(seconds=stale_after)
    return _usual(delivery, catalogue, stale) or _decode_carefully(delivery, catalogue, stale)


def decoder(catalogue: Catalogue,
            stale_after: float = STALE_AFTER) -> Callable[[Delivery], Record]:
    """`decode` bound to a catalogue, for the loop: one call a message, not three. It also
    remembers the last (value, Timestamp) of each charger's observation (a stale one only
    when nothing else is known), to mark the same again as repeated (the cloud sends last
    values again: on a new subscription, and now and then minutes later), one number per
    pair."""
    stale = timedelta(seconds=stale_after)
    last: dict[int, int] = {}

    def decoding(delivery: Delivery) -> Record:
        record = _usual(delivery, catalogue, stale) or \
            _decode_carefully(delivery, catalogue, stale)
        if type(record) is Observation and record.id is not None \
                and record.kind == "observation":
            key = hash((record.charger, record.id))
            try:
                seen = hash((record.value, record.timestamp))
            except TypeError:  # a JSON value (dict, list): by its text
                seen = hash((repr(record.value), record.timestamp))
            known = last.get(key)
            if known == seen:
                record.repeated = True
                record.notes.append(REPEATED_NOTE)
            elif known is None or not record.stale:  # an old value is not what it has now,
                last[key] = seen  # unless nothing newer is known
        return record
    return decoding


REPEATED_NOTE = "repeated: the same value and Timestamp as this charger's last of it"


def stale_note(age: timedelta) -> str:
    return (f"stale: measured {span(age.total_seconds())} before it reached the cloud "
            "(an old value sent again)")


def _usual(delivery: Delivery, catalogue: Catalogue,
           stale_after: timedelta) -> Observation | None:
    """`<serial>.O.<id>` of a catalogued id of a charger, a body of just Timestamp and Value,
    the value of the catalogue's type, both times ISO in UTC, a latency that is not
    negative: what nearly every message is. None for anything else (the careful path then
    reads it)."""
    routing_key = delivery.routing_key
    routes = catalogue.routes
    route = routes.get(routing_key)
    if route is None:  # a routing key not read before, or not for the fast path
        route = _route(routing_key, catalogue)
        if route is None:
            return None
        if len(routes) < ROUTES_KEPT:
            routes[routing_key] = route
    serial, entry = route
    try:
        body = orjson.loads(delivery.body)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict or len(body) != 2:
        return None
    value, stamp = body.get("Value", _MISSING), body.get("Timestamp")
    headers = delivery.headers
    sent = headers.get("ArrivalTime") if headers else None
    if type(value) is not entry.fast:
        if type(value) is int and entry.fast is float:  # a Double as a whole number: 23
            value = float(value)
        else:
            return None
    if type(stamp) is not str or type(sent) is not str \
            or (type(value) is float and value - value != 0.0):  # NaN or an infinity
        return None
    try:
        timestamp, arrival = datetime.fromisoformat(stamp), datetime.fromisoformat(sent)
    except ValueError:
        return None
    if timestamp.tzinfo is not UTC or arrival.tzinfo is not UTC:
        return None
    received = _received_time(delivery.received)
    latency_ms = (received - arrival) // _MICROSECOND / 1000
    if latency_ms < 0:
        return None
    age = arrival - timestamp
    stale = age > stale_after
    return Observation(
        "observation", serial, entry.id, entry.name, value, entry.unit,
        entry.label(value) if entry.labelled else None, entry.type, entry.tags, timestamp,
        arrival, received, latency_ms, routing_key, delivery.redelivered, None,
        [stale_note(age)] if stale else [], stale)


# Routing keys the fast path has read, with what it made of them (a fleet sends the same
# few thousand again and again): a lookup where splitting took three new strings a
# message, and a charger's serial the same string in all its records (the live store's
# counts and views then find it by identity). Only keys it reads (any other goes the
# careful way, and a stream of odd keys fills nothing), and at most ROUTES_KEPT of them.
ROUTES_KEPT = 50_000


def _route(routing_key: str, catalogue: Catalogue) -> tuple[str | None, ObservationType] | None:
    """(serial, catalogue entry) of `<serial>.O.<id>` of a charger's catalogued id that
    the fast path reads; None for any other routing key."""
    parts = routing_key.split(".")
    if len(parts) != 3 or parts[1] != "O":
        return None
    if catalogue.others and parts[0][:2].upper() in catalogue.others:  # kind_key, inline
        return None  # another kind of device: its own list
    entry = catalogue.by_route(parts[2])
    if entry is None or entry.fast is None:
        return None
    return (sys.intern(parts[0]) or None), entry


def _decode_carefully(delivery: Delivery, catalogue: Catalogue,
                      stale_after: timedelta) -> Record:
    received = _received_time(delivery.received)
    headers = delivery.headers
    arrival = parse_time(_arrival_header(headers)) if headers else None
    latency_ms = (
        (received - arrival) // _MICROSECOND / 1000 if arrival is not None else None
    )
    parts = delivery.routing_key.split(".")
    charger = parts[0] or None
    kind = parts[1] if len(parts) > 1 else ""
    route_id = _int_or_none(parts[2]) if len(parts) > 2 else None
    if kind in _OTHER_KINDS:
        return _other_kind(
            delivery, _json_or_text(delivery.body), kind, charger, route_id,
            arrival, received, latency_ms,
        )
    notes: list[str] = []
    try:
        body = _parse_json(delivery.body, notes)
        if not isinstance(body, dict):
            raise _Unreadable("body is not a JSON object")
        if body.keys() >= PRODUCT_UPDATE:
            charger, route_id, body = _product_update(body, charger, delivery.routing_key)
        elif kind != "O" or route_id is None:
            charger, route_id = _ids_from_body(body, charger, delivery.routing_key)
        device = catalogue.of(charger)
        return _observation(
            delivery, body, device, route_id, charger,
            arrival, received, latency_ms, notes, stale_after,
        )
    except _Unreadable as problem:
        raw, raw_encoding = _body_as_text(delivery.body)
        return ErrorRecord(
            kind="error",
            charger=charger,
            id=route_id if kind == "O" else None,
            error=str(problem),
            raw=raw,
            raw_encoding=raw_encoding,
            headers=plain_headers(delivery.headers or {}),
            arrival=arrival,
            received=received,
            latency_ms=latency_ms,
            routing_key=delivery.routing_key,
            redelivered=delivery.redelivered,
        )


def failed_record(delivery: Delivery, stage: str, problem: BaseException) -> ErrorRecord:
    """The safety net's record: a bug met while `stage` ("decoding", "writing") this
    delivery, named, with the message kept whole. Built from nothing that can fail."""
    raw, raw_encoding = _body_as_text(delivery.body)
    try:
        headers = plain_headers(delivery.headers or {})
    except Exception:
        headers = {}
    routing_key = str(delivery.routing_key)
    return ErrorRecord(
        kind="error", charger=routing_key.split(".")[0] or None, id=None,
        error=f"internal error while {stage} this message: {type(problem).__name__}: "
              f"{_first_line(problem)} (please report it)",
        raw=raw, raw_encoding=raw_encoding, headers=headers, arrival=None,
        received=datetime.fromtimestamp(delivery.received, UTC), latency_ms=None,
        routing_key=routing_key, redelivered=delivery.redelivered,
    )


@lru_cache(maxsize=1)
def _received_time(epoch: float) -> datetime:
    """A source stamps a whole batch at once; consecutive deliveries share the datetime."""
    return datetime.fromtimestamp(epoch, UTC)


def _observation(
    delivery: Delivery,
    body: dict[str, Any],
    device: Catalogue,
    observation_id: int,
    charger: str | None,
    arrival: datetime | None,
    received: datetime,
    latency_ms: float | None,
    notes: list[str],
    stale_after: timedelta,
) -> Observation:
    entry = device.get(observation_id)
    wire_value = body.get("Value", _MISSING)
    if wire_value is _MISSING:
        wire_value = body.get("value", _MISSING)
        if wire_value is _MISSING:
            raise _Unreadable("body has no Value")
    stamp = body.get("Timestamp")
    if stamp is None:
        stamp = body.get("timestamp")
    timestamp = parse_time(stamp) if stamp is not None else None
    if stamp is not None and timestamp is None:
        notes.append(f"Timestamp {stamp!r} is not a time")
    if latency_ms is not None and latency_ms < 0:
        notes.append(NEGATIVE_LATENCY_NOTE if latency_ms >= -CLOCK_SKEW_MS
                     else skew_note(latency_ms))
    stale = False
    if timestamp is not None and arrival is not None and arrival - timestamp > stale_after:
        stale = True
        notes.append(stale_note(arrival - timestamp))
    declared = _declared_type(body)
    raw: object = None
    tags: tuple[str, ...]
    if entry is None:
        value = _as_declared(wire_value, declared, notes)
        name, unit, label, value_type = "Unknown", None, None, declared
        tags = () if device.device == "charger" else (device.device,)
        notes.append(f"observation id {observation_id} is not in the catalogue"
                     + ("" if device.device == "charger" else f" of the {device.device}"))
    else:
        if declared is not None and entry.type and declared not in entry.types:
            notes.append(f"body says DataType {declared}; the catalogue's {entry.type} is used")
        value = _typed(wire_value, entry, notes)
        if observation_id == REVERSED_TOKEN_ID and isinstance(value, str):
            raw, value = value, value[::-1]
        name, unit, value_type, tags = entry.name, entry.unit, entry.type or declared, entry.tags
        label = entry.label(value)
    if type(value) is float and value - value != 0.0:  # NaN or an infinity: JSON has neither
        notes.append(f"value was {_float_name(value)}; JSON has no such number, so the "
                     "JSON line says null")
    # Positional, in the schema's order: keyword arguments cost four times as much here.
    return Observation(
        "observation", charger, observation_id, name, value, unit, label, value_type, tags,
        timestamp, arrival, received, latency_ms, delivery.routing_key, delivery.redelivered,
        raw, notes, stale,
    )


def _other_kind(
    delivery: Delivery,
    body: object,
    kind: str,
    charger: str | None,
    route_id: int | None,
    arrival: datetime | None,
    received: datetime,
    latency_ms: float | None,
) -> Observation:
    record_kind, name = _OTHER_KINDS[kind]
    notes: list[str] = []
    if isinstance(body, str) and _has_surrogate(body):
        body = _replace_surrogates(body, notes)
    label = None
    timestamp = None
    if isinstance(body, dict):
        timestamp = parse_time(body.get("Timestamp", body.get("timestamp")))
        accepted = body.get("WasAccepted", body.get("wasAccepted"))
        if isinstance(accepted, bool):
            result = body.get("ResultCode", body.get("resultCode"))
            label = ("accepted" if accepted else "rejected") + (
                f" (result {result})" if result is not None else ""
            )
    return Observation(
        kind=record_kind,
        charger=charger,
        id=route_id if record_kind == "command_response" else None,
        name=name,
        value=body,
        unit=None,
        label=label,
        type=None,
        tags=(),
        timestamp=timestamp,
        arrival=arrival,
        received=received,
        latency_ms=latency_ms,
        routing_key=delivery.routing_key,
        redelivered=delivery.redelivered,
        raw=None,
        notes=notes,
    )


def _typed(value: object, entry: ObservationType, notes: list[str]) -> object:
    """The wire value as the catalogue's type says; left as it came, with a note, if it won't go."""
    value_type = entry.type
    if not value_type:  # the wider list publishes no type for it: as it came
        return value
    # the common cases first, without a call
    if value_type == "Double":
        if type(value) is float:
            return value
    elif value_type == "Integer":
        if type(value) is int:
            return value
    elif value_type == "Boolean" and type(value) is bool:
        return value
    try:
        if value_type == "Double":
            return _to_float(value)
        if value_type == "Integer":
            return _to_int(value)
        if value_type == "Boolean":
            return _to_bool(value)
        if value_type == "Position":  # {Latitude, Longitude, Altitude, DOP}
            if isinstance(value, dict):
                return value
            raise ValueError
        if not isinstance(value, str):
            if entry.carries_json and isinstance(value, dict | list):
                return value
            raise ValueError
        if entry.carries_json:
            try:
                return _parse_json(value.encode(), notes)
            except _Unreadable as problem:
                notes.append(f"the value is not readable JSON ({problem}); kept as text")
        return value
    except (ValueError, TypeError, OverflowError):
        if _NATURAL.get(type(value)) in entry.types:  # a type another source gives it
            return value
        notes.append(f"value {_short(value)} is not a valid {entry.type}; kept as it came")
        return value


def _to_float(value: object) -> float:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, float):
        return value
    if isinstance(value, int | str | Decimal):
        return float(value)
    raise TypeError


def _to_int(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            value = float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError


def _parse_json(body: bytes, notes: list[str]) -> Any:
    """JSON as every later stage can take it: nested at most MAX_DEPTH deep, text valid
    Unicode (a lone surrogate, which no encoder writes, becomes U+FFFD with a note)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        # a body too short to nest that deep needs no look (the usual case)
        if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
            _check_depth(parsed, 0)
        return parsed
    # orjson refuses what the standard library reads (integers beyond 64 bits, NaN, lone
    # surrogates); only malformed messages come this way, so its speed does not matter.
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as problem:
        raise _Unreadable(f"body is not valid JSON ({_first_line(problem)})") from None
    _check_depth(parsed, 0)
    return _without_surrogates(parsed, notes)


def _check_depth(value: object, depth: int) -> None:
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise _Unreadable(f"JSON nested deeper than {MAX_DEPTH} levels")
        for item in value.values() if isinstance(value, dict) else value:
            _check_depth(item, depth + 1)


def _without_surrogates(value: Any, notes: list[str]) -> Any:
    if isinstance(value, str):
        return _replace_surrogates(value, notes) if _has_surrogate(value) else value
    if isinstance(value, list):
        return [_without_surrogates(item, notes) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(key, notes): _without_surrogates(item, notes)
                for key, item in value.items()}
    return value


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and any("\ud800" <= char <= "\udfff" for char in text)


def _replace_surrogates(text: str, notes: list[str]) -> str:
    if SURROGATE_NOTE not in notes:
        notes.append(SURROGATE_NOTE)
    return _SURROGATE.sub("\ufffd", text)


def _float_name(value: float) -> str:
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def _json_or_text(body: bytes) -> object:
    """Pulses and command responses are shown as they came, JSON or not."""
    if not body:
        return None
    try:
        return _parse_json(body, [])
    except _Unreadable:
        return _body_as_text(body)[0]


def _ids_from_body(
    body: dict[str, Any], charger: str | None, routing_key: str
) -> tuple[str | None, int]:
    observation_id = _int_or_none(body.get("ObservationId", body.get("observationId")))
    if observation_id is None:
        raise _Unreadable(
            f"routing key {routing_key!r} is not <charger>.O.<id> and the body names no ObservationId"
        )
    body_charger = body.get("ChargerId", body.get("chargerId"))
    return (body_charger if isinstance(body_charger, str) and body_charger else charger,
            observation_id)


def _product_update(body: dict[str, Any], charger: str | None,
                    routing_key: str) -> tuple[str | None, int, dict[str, Any]]:
    """SignalR's ProductUpdate (`mid`, `dataType`, `id`, `timestamp`, `value` as text): the
    serial, the id, and the body as the rest of decoding reads it."""
    observation_id = _int_or_none(body["id"])
    if observation_id is None:
        raise _Unreadable(f"a ProductUpdate whose id {_short(body['id'])} is not a number")
    serial, value = body["mid"], body["value"]
    if body["dataType"] in _STRUCTURED and isinstance(value, str):  # Position, Statistics
        with contextlib.suppress(orjson.JSONDecodeError):
            value = orjson.loads(value)
    return (serial if isinstance(serial, str) and serial else charger, observation_id,
            {"Timestamp": body.get("timestamp"), "Value": value, "DataType": body["dataType"]})


_STRUCTURED = (5, 7)  # DataType codes whose text is a JSON object


def _as_declared(value: object, declared: str | None, notes: list[str]) -> object:
    """An uncatalogued id's value as its message's DataType says (a ProductUpdate's text)."""
    if declared is None or not isinstance(value, str):
        return value
    return _typed(value, _DECLARED.get(declared) or _DECLARED["String"], notes)


_DECLARED = {name: ObservationType(0, "Unknown", name, (), None, False, "")
             for name in ("Double", "Integer", "Boolean", "String", "Position")}


def _declared_type(body: dict[str, Any]) -> str | None:
    declared = body.get("DataType")
    if declared is None:
        declared = body.get("dataType")
        if declared is None:
            return None
    if isinstance(declared, int) and not isinstance(declared, bool):
        return DATA_TYPE_CODES.get(declared, str(declared))
    return str(declared)


def _arrival_header(headers: Headers) -> object:
    value = headers.get("ArrivalTime")
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == "arrivaltime":
                return candidate
    return value


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdecimal() and value.isascii():
        return int(value)
    return None


def plain_headers(headers: Mapping[str, object]) -> dict[str, object]:
    """Headers as JSON-friendly values: text for bytes, ISO text for times."""
    return {str(key): _plain(value) for key, value in headers.items()}


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return parse_time(value)
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, float) and value - value != 0.0:  # JSON has no NaN nor infinity
        return _float_name(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _body_as_text(body: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    """The body as text when it is UTF-8, else as base64, and which of the two it is."""
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_line(problem: BaseException) -> str:
    return (str(problem) or type(problem).__name__).splitlines()[0][:120]
