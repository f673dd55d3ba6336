"""The pure stages on their own: time parsing, decoding odd messages, filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from easee_tail import catalogue
from easee_tail.decode import decode
from easee_tail.filters import FilterSpec, build_filter
from easee_tail.model import Delivery, ErrorRecord, Observation
from easee_tail.sinks.jsonl import encode
from easee_tail.times import parse_time

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
NOON_EPOCH = NOON.timestamp()


@pytest.mark.parametrize("value", [
    "2026-11-24T12:00:00.0000000Z", "2026-11-24T12:00:00Z", "2026-11-24T13:00:00+01:00",
    "2026-11-24 12:00:00", NOON_EPOCH, int(NOON_EPOCH), int(NOON_EPOCH * 1000),
    str(int(NOON_EPOCH)), int(NOON_EPOCH * 10_000_000) + 621_355_968_000_000_000,
    datetime(2026, 11, 24, 12, 0), b"2026-11-24T12:00:00Z",
])
def test_every_arrival_time_form_reads_as_the_same_moment(value: object) -> None:
    assert parse_time(value) == NOON


@pytest.mark.parametrize("value", ["soon", "", None, True, float("nan"), 1e300, b"\xff", [1]])
def test_unreadable_times_are_none_not_errors(value: object) -> None:
    assert parse_time(value) is None


def delivery(routing_key: str, body: bytes, headers: dict[str, object] | None = None) -> Delivery:
    return Delivery(routing_key, body, headers, NOON_EPOCH + 0.25)


def test_latency_is_received_minus_arrival() -> None:
    record = decode(delivery("EH1.O.120", b'{"Value": 1}', {"ArrivalTime": "2026-11-24T12:00:00Z"}),
                    catalogue.load())
    assert isinstance(record, Observation) and record.latency_ms == 250.0


def test_body_ids_rescue_an_unexpected_routing_key_and_disagreements_are_noted() -> None:
    record = decode(delivery("odd-key", b'{"ObservationId": 120, "ChargerId": "EH9", '
                                        b'"Value": "7.5", "DataType": 4}'), catalogue.load())
    assert isinstance(record, Observation)
    assert (record.charger, record.id, record.value) == ("EH9", 120, 7.5)
    assert any("DataType Integer" in note for note in record.notes)


@pytest.mark.parametrize("body", [b"", b"[]", b"42", b'{"Timestamp": 1}', b"{" * 5000,
                                  b'{"Value": 1' , "ä".encode("latin-1")])
def test_unreadable_bodies_become_error_records_that_keep_the_body(body: bytes) -> None:
    record = decode(delivery("EH1.O.120", body), catalogue.load())
    assert isinstance(record, ErrorRecord)
    assert record.charger == "EH1" and record.id == 120 and record.error


def test_huge_integers_and_deep_values_do_not_break_decoding() -> None:
    record = decode(delivery("EH1.O.4242", b'{"Value": 123456789012345678901234567890}'),
                    catalogue.load())
    # Beyond 64 bits the JSON reader gives a float: close, shown, and still encodable.
    assert isinstance(record, Observation)
    assert record.value == pytest.approx(1.2345678901234568e29)
    assert b'"name":"Unknown"' in encode(record)


def test_filters_judge_records_on_what_they_carry() -> None:
    table = catalogue.load()
    keep = build_filter(FilterSpec(chargers=("eh1",), observations=(109,)))
    assert keep is not None
    wanted = decode(delivery("EH1.O.109", b'{"Value": 3}'), table)
    other_charger = decode(delivery("EH2.O.109", b'{"Value": 3}'), table)
    other_obs = decode(delivery("EH1.O.120", b'{"Value": 3}'), table)
    anonymous_error = decode(delivery("", b"junk"), table)
    pulse = decode(delivery("EH1.P", b""), table)
    assert [keep(r) for r in (wanted, other_charger, other_obs, anonymous_error, pulse)] == [
        True, False, False, True, False]
    assert build_filter(FilterSpec()) is None


def test_an_unreadable_message_with_headers_json_cannot_hold_is_one_json_line() -> None:
    """An infinite header (AMQP has doubles; JSON has no infinity) beside an integer beyond
    64 bits (which orjson refuses): the error record still makes one line, the infinity
    named as text (found by hypothesis)."""
    record = decode(Delivery("", b"", {"big": -(2**63) - 1, "far": float("inf"),
                                      "lost": float("nan")}, 0.0), catalogue.load())
    assert isinstance(record, ErrorRecord)
    line = encode(record)
    assert line.count(b"\n") == 1
    parsed = json.loads(line)
    assert parsed["headers"] == {"big": -(2**63) - 1, "far": "Infinity", "lost": "NaN"}
