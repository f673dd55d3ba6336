"""The values that travel down the pipe: Delivery -> Observation | ErrorRecord.

Field order is the JSON lines schema (the JSONL sink serialises these dataclasses as they are).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from operator import attrgetter
from typing import Literal

# Headers as pika hands them over: str keys, values of AMQP field types.
Headers = Mapping[str, object]

RecordKind = Literal["observation", "command_response", "pulse", "package", "error"]


@dataclass(slots=True)  # not frozen: a frozen __init__ costs five times as much per message
class Delivery:
    """One message as a source received it, before any interpretation. Read, never changed."""

    routing_key: str
    body: bytes
    headers: Headers | None
    received: float  # epoch seconds, taken when the message was handed to us
    redelivered: bool = False
    tag: int = 0  # the source's handle for acknowledging it


# The records keep a __dict__ (no slots): orjson writes a dataclass from its __dict__ in one
# pass, and one with slots field by field, at nearly three times the cost (bench/run row 5).
@dataclass
class Observation:
    """A decoded message: an observation, or a command response, pulse or package.

    For the kinds other than "observation", `id` and `type` are null and `value`
    holds the parsed body.
    """

    kind: RecordKind
    charger: str | None
    id: int | None
    name: str
    value: object
    unit: str | None
    label: str | None
    type: str | None
    tags: tuple[str, ...]
    timestamp: datetime | None  # when the charger measured it
    arrival: datetime | None  # ArrivalTime: when it reached the Easee cloud
    received: datetime  # when easee-tail received it
    latency_ms: float | None
    routing_key: str
    redelivered: bool
    raw: object  # the wire value where `value` was transformed (108 reversed), else null
    notes: list[str]
    # the cloud sent an old value again: measured long before it reached the cloud (more than
    # --stale-after), or the same value and Timestamp as the last of this charger and id
    stale: bool = False
    repeated: bool = False


@dataclass
class ErrorRecord:
    """A message that could not be read as any known shape: kept whole, never dropped."""

    kind: Literal["error"]
    charger: str | None
    id: int | None
    error: str
    raw: str  # the body as text, or base64 when it is not UTF-8
    raw_encoding: Literal["utf-8", "base64"]
    headers: dict[str, object]
    arrival: datetime | None
    received: datetime
    latency_ms: float | None
    routing_key: str
    redelivered: bool


Record = Observation | ErrorRecord


# Every field a JSON line can have, in schema order: what templates and --where may name.
RECORD_FIELDS = tuple(dict.fromkeys(
    [*Observation.__dataclass_fields__, *ErrorRecord.__dataclass_fields__]))


@dataclass(slots=True)
class Batch:
    """Records written together, and what every part of the live store reads of each of
    them, taken once (in C): each pass over a batch costs every record a trip to memory."""

    records: Sequence[Record]
    serials: list[str | None]  # None: a routing key without a serial
    ids: list[int | None]
    errors: bool  # an error record among them

    @classmethod
    def of(cls, records: Sequence[Record]) -> Batch:
        return cls(records, list(map(_charger, records)), list(map(_id, records)),
                   any(map(isinstance, records, _ERROR_RECORD)))


_charger = attrgetter("charger")
_id = attrgetter("id")
_ERROR_RECORD = repeat(ErrorRecord)  # isinstance's second argument, for map()
