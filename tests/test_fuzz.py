"""Whatever arrives, a record comes out: property-based tests of the decoder and the JSON
line, and a fuzz run of random messages through the real broker and the real process."""

from __future__ import annotations

import io
import json
import random
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from easee_tail.catalogue import load
from easee_tail.decode import decode
from easee_tail.format import display_latency, summary
from easee_tail.live import LiveStore
from easee_tail.model import Batch, Delivery, ErrorRecord, Observation
from easee_tail.sinks.jsonl import encode
from easee_tail.sinks.state_view import state_lines
from easee_tail.sinks.table import TIME_HEADINGS, StateOptions, TableSink, fit_columns
from easee_tail.state import FleetState, groups
from easee_tail.stats import Stats
from easee_tail.text import plural, visible
from tests.conftest import BrokerQueue, Runner
from tests.harness.rabbit import RabbitBroker
from tests.test_pipeline import FakeSource

CATALOGUE = load()
KINDS = {"observation", "command_response", "pulse", "package", "error"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
times = st.one_of(
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.datetimes().map(lambda moment: moment.isoformat() + "Z"),
    st.datetimes().map(lambda moment: moment.isoformat(timespec="microseconds") + "0Z"),
    st.integers(), st.floats(), st.text(max_size=40), st.binary(max_size=40),
    st.decimals(allow_nan=True), st.none(), st.booleans(),
)
header_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.binary(max_size=20) | st.decimals(allow_nan=False, places=3) | times,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=3),
    max_leaves=8,
)
known_ids = st.sampled_from([entry.id for entry in CATALOGUE] + [0, 999, 65535])
routing_keys = st.one_of(
    st.builds(lambda serial, obs: f"{serial}.O.{obs}", st.text(max_size=10), known_ids),
    st.builds(lambda serial, kind, rest: f"{serial}.{kind}.{rest}", st.text(max_size=8),
              st.sampled_from(["O", "CR", "P", "OP", "X", ""]), st.text(max_size=8)),
    st.text(max_size=40),
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda stamp, value: json.dumps({"Timestamp": stamp, "Value": value}).encode(),
              st.text(max_size=30) | st.datetimes().map(lambda d: d.isoformat() + "Z"),
              json_values),
    st.builds(lambda body: json.dumps(body).encode(), json_values),
    st.dictionaries(st.sampled_from(["Timestamp", "Value", "value", "DataType",
                                     "ObservationId", "ChargerId", "timestamp"]),
                    json_values).map(lambda body: json.dumps(body).encode()),
)


def check(delivery: Delivery) -> None:
    record = decode(delivery, CATALOGUE)
    assert isinstance(record, Observation | ErrorRecord)
    assert record.kind in KINDS
    assert record.routing_key == delivery.routing_key
    line = encode(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    parsed = json.loads(line)
    assert parsed["kind"] == record.kind
    if isinstance(record, ErrorRecord):
        assert parsed["raw"] is not None  # the body is kept, never dropped


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routing_keys, bodies, st.none() | st.dictionaries(st.text(max_size=12), header_values,
                                                         max_size=4),
       st.floats(min_value=0, max_value=4e9), st.booleans())
def test_any_message_decodes_to_a_record_and_one_json_line(
    routing_key: str, body: bytes, headers: dict[str, Any] | None, received: float,
    redelivered: bool,
) -> None:
    check(Delivery(routing_key, body, headers, received, redelivered, 1))


@settings(max_examples=300, deadline=None)
@given(times, st.sampled_from(["ArrivalTime", "arrivaltime", "ARRIVALTIME"]))
def test_arrival_time_in_any_form_gives_a_latency_or_none(arrival: object, key: str) -> None:
    delivery = Delivery("EH000001.O.120", b'{"Timestamp":"2026-11-24T12:00:00Z","Value":1.5}',
                        {key: arrival}, 1_795_000_000.0, False, 1)
    record = decode(delivery, CATALOGUE)
    assert isinstance(record, Observation)
    assert record.latency_ms is None or isinstance(record.latency_ms, float)
    check(delivery)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(routing_keys, bodies), min_size=1, max_size=25),
       st.integers(min_value=10, max_value=220), st.integers(min_value=1, max_value=60),
       st.integers(min_value=0, max_value=30))
def test_the_views_draw_any_records_within_the_width(
    messages: list[tuple[str, bytes]], width: int, height: int, skip: int
) -> None:
    """Whatever was decoded, the state view and the summary draw it, each line within the
    terminal's width (rich measures cells: wide characters count double)."""
    fleet, stats = FleetState(CATALOGUE), Stats()
    records = [decode(Delivery(routing_key, body, None, 1_795_000_000.0 + number), CATALOGUE)
               for number, (routing_key, body) in enumerate(messages)]
    fleet.take(Batch.of(records), time.monotonic())
    stats.take(Batch.of(records), time.monotonic())
    lines = state_lines(fleet, groups(CATALOGUE), width, height, time.monotonic(), 300.0,
                        skip=skip)
    assert lines and len(lines) <= max(height, 1)
    assert all(cell_len(line.plain) <= width for line in lines)
    assert summary(stats, 1.0, width).startswith(
        f"easee-tail: {plural(len(messages), 'message')} in")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(min_value=-1999.0, max_value=7_200_000.0), min_size=1, max_size=400),
       st.integers(min_value=1, max_value=200))
def test_the_run_percentiles_count_every_latency(latencies: list[float], batch: int) -> None:
    """The exit summary's latency line: p50, p95 and p99 of every message of the run, each
    within half a percent of the true one (or 0.01 ms), and the true max, whatever the
    batches (a sample of the run missed the max, and cost a random draw per value kept);
    the same counted by the live store's way and by a sink's."""
    received = 1_795_000_000.0
    records = [decode(Delivery(
        "EH000001.O.120", b'{"Timestamp":"2026-11-24T12:00:00Z","Value":1.5}',
        {"ArrivalTime": datetime.fromtimestamp(received - latency / 1000, UTC).isoformat()},
        received), CATALOGUE) for latency in latencies]
    stats, sink = Stats(), Stats()  # the live store's way (take), and a sink's (write, flush)
    for start in range(0, len(records), batch):
        stats.take(Batch.of(records[start:start + batch]), time.monotonic())
        for record in records[start:start + batch]:
            sink.write(record)
        sink.flush()
    exact = sorted(record.latency_ms for record in records
                   if record.latency_ms is not None)
    found = stats.run_percentiles()
    assert sink.run_percentiles() == found and sink.histogram == stats.histogram
    assert (sink.total, sink.per_charger, sink.per_observation, sink.negative_latencies) == \
        (stats.total, stats.per_charger, stats.per_observation, stats.negative_latencies)
    assert found is not None and found["max"] == exact[-1]
    for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        true = exact[min(len(exact) - 1, int(fraction * len(exact)))]
        assert abs(found[name] - true) <= max(0.005 * abs(true), 0.01), (name, found, true)
    assert f"max {display_latency(exact[-1])}" in summary(stats, 1.0, 120)


CONTROL_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # the cursor moves of a redraw


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(routing_keys, bodies), min_size=1, max_size=25),
       st.integers(min_value=10, max_value=220), st.sampled_from(list(TIME_HEADINGS)))
def test_the_stream_view_draws_any_records_one_line_each_within_the_width(
    messages: list[tuple[str, bytes]], width: int, time_field: str
) -> None:
    """Whatever was decoded, the stream view draws it at any width and time column, every
    line no wider than the terminal (in cells: wide characters count double), and a name
    too long for its column leaves an ellipsis on the screen. (That each cell keeps to its
    own column is the next test's.)"""
    records = [decode(Delivery(routing_key, body, None, 1_795_000_000.0 + number), CATALOGUE)
               for number, (routing_key, body) in enumerate(messages)]
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=width, height=60,
                      color_system=None, legacy_windows=False)
    store = LiveStore(Stats())
    table = TableSink(console, store, FakeSource([]), StateOptions(groups(CATALOGUE), 300.0),
                      time_field=time_field)
    for record in records:
        store.write(record)
    store.flush()
    table.close()  # the last frame, with every record
    drawn = [CONTROL_SEQUENCE.sub("", line)
             for line in re.split("[\r\n]", screen.getvalue())]  # a redraw starts at \r
    assert all(cell_len(line) <= width for line in drawn), drawn
    column = next((column for column in fit_columns(width) if column.name == "name"), None)
    if column is not None and any(cell_len(visible(record.name)) > column.width
                                  for record in records if isinstance(record, Observation)):
        assert any("…" in line for line in drawn)


def test_a_stream_row_of_wide_characters_keeps_its_columns() -> None:
    """A value of wide characters (two cells each) is cut short in its own column, so the
    latency after it is still on the row (cropped by characters, it would push it off)."""
    body = json.dumps({"Timestamp": "2026-11-24T12:00:00Z", "Value": "漢字" * 40}).encode()
    record = decode(Delivery("EH000001.O.128", body, None, 1_795_000_000.0), CATALOGUE)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80, height=20,
                      color_system=None, legacy_windows=False)
    store = LiveStore(Stats())
    table = TableSink(console, store, FakeSource([]), StateOptions(groups(CATALOGUE), 300.0))
    store.write(record)
    store.flush()
    table.close()
    [row] = [CONTROL_SEQUENCE.sub("", line) for line in re.split("[\r\n]", screen.getvalue())
             if "EH000001" in line][-1:]
    assert cell_len(row) == 80
    value_end = row.index("…")  # the value, cut short
    assert row[value_end + 1:].strip() == display_latency(record.latency_ms), row


def test_huge_and_deep_bodies_are_error_records_or_observations() -> None:
    for body in (b"[" * 200_000, b'{"a":' * 50_000, b"x" * 10_000_000,
                 json.dumps({"Timestamp": "2026-11-24T12:00:00Z", "Value": "v" * 5_000_000}
                            ).encode()):
        check(Delivery("EH000001.O.120", body, None, 1_795_000_000.0, False, 1))


def test_random_messages_through_the_broker_all_come_out(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    """Random bodies, routing keys and header sets, published for real (what pika can
    encode: no float headers), consumed by the real process: one line each, in order."""
    rng = random.Random(20261125)
    now = datetime.now(UTC)
    header_choices: list[Any] = [
        lambda: None, lambda: now.isoformat(), lambda: (now + timedelta(hours=1)).isoformat(),
        lambda: now.replace(tzinfo=None), lambda: rng.randint(-2**62, 2**62),
        lambda: rng.randbytes(rng.randint(0, 30)), lambda: "not a time",
        lambda: {"nested": [1, "two", {"x": b"\xff"}]}, lambda: Decimal("1.25"),
        lambda: rng.choice([True, False]), lambda: str(rng.random() * 1e12),
    ]
    messages = []
    for index in range(500):
        key = rng.choice([f"EH{index:06d}.O.{rng.choice([109, 120, 108, 999])}",
                          f"EH{index:06d}.CR.11.{rng.randint(0, 9)}", f"EH{index:06d}.P",
                          "odd key", f"EH{index:06d}.O.x"])
        body = rng.choice([
            rng.randbytes(rng.randint(0, 300)),
            json.dumps({"Timestamp": now.isoformat(), "Value": rng.random()}).encode(),
            b"[" * rng.randint(1, 5000), b"", "\u00e9\u2603".encode("utf-16"),
        ])
        headers = {rng.choice(["ArrivalTime", "X", "arrivaltime"]): rng.choice(header_choices)()
                   for _ in range(rng.randint(0, 3))}
        messages.append((key, body, {k: v for k, v in headers.items() if v is not None}))
    queue.publish_many(messages)
    result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                     "--ca-file", str(cli.certs.ca_file), "--jsonl", "--count", "500")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 500
    records = [json.loads(line) for line in lines]
    assert [record["routing_key"] for record in records] == [key for key, _, _ in messages]
    assert queue.depth() == 0
