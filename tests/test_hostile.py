"""One hostile message must never hang, crash or poison the queue.

Every catalogue id (and one outside it) crossed with every hostile value, enumerated here on
purpose (not drawn by chance from a fuzzer), goes through decode, the JSON line, the table,
the state view and the summary; then a set of them goes through the real broker and the
real process, which shows and saves each and drains the queue."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from easee_tail.catalogue import load
from easee_tail.decode import decode
from easee_tail.format import display_value, summary
from easee_tail.live import LiveStore
from easee_tail.model import Delivery, ErrorRecord, Observation, Record
from easee_tail.sinks.jsonl import encode
from easee_tail.sinks.state_view import state_lines
from easee_tail.sinks.table import StateOptions, TableSink
from easee_tail.state import FleetState, groups
from easee_tail.stats import Stats
from tests.conftest import BrokerQueue, Runner
from tests.harness.rabbit import RabbitBroker
from tests.test_pipeline import FakeSource

CATALOGUE = load()
IDS = [entry.id for entry in CATALOGUE] + [9999]
STAMP = '"2026-11-26T10:00:00Z"'
DEEP = 10_000  # beyond any parser's recursion: unreadable
READABLE_DEEP = 1_000  # orjson reads it (it stops at 1024), cannot write it (254)

# Values as JSON text (NaN and Infinity as the standard library and .NET write them).
HOSTILE_VALUES = {
    "negative": "-1", "zero": "0", "2^63": str(2**63), "-2^63": str(-2**63),
    "2^64": str(2**64), "huge": "1" + "0" * 400, "NaN": "NaN", "inf": "Infinity",
    "-inf": "-Infinity", "-0.0": "-0.0", "1e308": "1e308", "empty": '""', "x": '"x"',
    "numeric text": '"42"', "float text": '"-7.5"', "overflowing text": '"1e400"',
    "NaN text": '"NaN"', "true": "true", "null": "null", "list": "[]", "object": "{}",
    "nested": "[" * DEEP + "]" * DEEP, "nested object": '{"a":' * DEEP + "1" + "}" * DEEP,
    "nested 1000": "[" * READABLE_DEEP + "]" * READABLE_DEEP,
    "lone surrogate": '"\\ud800"', "low surrogate": '"a\\udfffb"',
    "escape sequences": '"\\u001b]0;OWNED\\u0007\\u001b[2J"', "C1": '"\\u0085\\u009b31m"',
    "DEL": '"\\u007f"', "bidi": '"\\u202eevil\\u202c"', "json in text": '"{\\"a\\": [1, 2]}"',
}
HOSTILE_BODIES = {
    "invalid UTF-8": b'\xff\xfe{"Value": 1}',
    "invalid UTF-8 in a string": b'{"Timestamp": "2026-11-26T10:00:00Z", "Value": "\xff\xfe"}',
    "empty": b"",
    "not an object": b"[1, 2]",
    "deep body": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "no Value": b'{"Timestamp": "2026-11-26T10:00:00Z"}',
    "surrogate key": b'{"Timestamp": "2026-11-26T10:00:00Z", "Value": {"\\ud800": NaN}}',
}
HOSTILE_KEYS = {
    "extra dots": "EH000001.O.120.extra.dots", "missing parts": "EH000001",
    "only dots": "...", "empty": "", "escape in serial": "EH\x1b]0;OWNED\x07\x1b[2J.O.120",
    "255 bytes": "E" * 248 + ".O.120", "backslash-escaped bytes": "EH\\xff\\xfe.O.120",
    "pulse": "EH000001.P", "command response": "EH000001.CR.11.638000000000000000",
    "package": "EH000001.OP.4", "unknown kind": "EH000001.Z.1",
}
UNSAFE = ("\x1b", "\x07", "\x9b", "\x85", "\u202e", "\x7f")


def deliveries() -> Iterator[tuple[str, Delivery]]:
    number = 0
    for obs in IDS:
        for name, value in HOSTILE_VALUES.items():
            number += 1
            body = f'{{"Timestamp": {STAMP}, "Value": {value}}}'.encode()
            yield f"{obs} {name}", Delivery(f"EH{obs:06d}.O.{obs}", body, None,
                                            1_795_000_000.0 + number, False, number)
    for name, body in HOSTILE_BODIES.items():
        for key in ("EH000001.O.120", "EH000001.O.128", "EH000001.P"):
            yield f"body {name} on {key}", Delivery(key, body, {"ArrivalTime": "\x1b[2J"},
                                                    1_795_000_000.0, False, 1)
    for name, key in HOSTILE_KEYS.items():
        for value in ('1.5', '"\\ud800"', "NaN"):
            body = f'{{"Timestamp": {STAMP}, "Value": {value}}}'.encode()
            yield f"key {name}", Delivery(key, body, None, 1_795_000_000.0, False, 1)


def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} written into a JSON line: not JSON")


def test_every_id_with_every_hostile_value_becomes_a_record_quickly_and_small() -> None:
    records: list[Record] = []
    slowest, largest = 0.0, 0
    tracemalloc.start()
    try:
        for case, delivery in deliveries():
            tracemalloc.reset_peak()
            held = tracemalloc.get_traced_memory()[0]  # the records kept so far
            started = time.process_time()
            record = decode(delivery, CATALOGUE)
            line = encode(record)
            shown = display_value(record)
            spent = time.process_time() - started
            peak = tracemalloc.get_traced_memory()[1] - held
            slowest, largest = max(slowest, spent), max(largest, peak)
            # bounded: a spinning decoder (RebootReason -1 did) fails here, not at the timeout
            assert spent < 0.25, f"{case}: {spent:.3f} s of CPU"
            assert peak < 16 << 20, f"{case}: {peak >> 20} MB"
            assert isinstance(record, Observation | ErrorRecord), case
            parsed = json.loads(line, parse_constant=_no_constants)
            assert line.count(b"\n") == 1 and parsed["routing_key"] == delivery.routing_key, case
            assert not any(char in shown for char in UNSAFE), f"{case}: {shown!r}"
            records.append(record)
    finally:
        tracemalloc.stop()
    print(f"\n{len(records)} hostile messages: slowest {slowest * 1000:.2f} ms of CPU, "
          f"peak {largest / 1024:.0f} KiB")
    by_case = {case: record for (case, _), record in zip(deliveries(), records, strict=True)}

    reboot = by_case["89 negative"]
    assert isinstance(reboot, Observation) and reboot.value == -1 and reboot.label is None
    for name in ("nested", "nested object", "nested 1000"):
        deep = by_case[f"120 {name}"]
        assert isinstance(deep, ErrorRecord), name
        assert len(deep.raw) > 2 * READABLE_DEEP  # the body kept whole
    assert "nested deeper than 64" in str(by_case["120 nested 1000"])
    nan = by_case["120 NaN"]
    assert isinstance(nan, Observation) and nan.value != nan.value
    assert json.loads(encode(nan))["value"] is None
    assert any("value was NaN" in note for note in nan.notes)
    assert display_value(nan).startswith("NaN")
    assert display_value(by_case["120 inf"]).startswith("inf")
    surrogate = by_case["128 lone surrogate"]
    assert isinstance(surrogate, Observation) and surrogate.value == "\ufffd"
    assert any("lone surrogate" in note for note in surrogate.notes)
    assert "\\x1b]0;OWNED\\x07" in display_value(by_case["128 escape sequences"])
    assert "\\u202e" in display_value(by_case["128 bidi"])


def test_the_table_state_view_and_summary_draw_every_hostile_record() -> None:
    records = [decode(delivery, CATALOGUE) for _, delivery in deliveries()]
    stats, fleet = Stats(), FleetState(CATALOGUE)
    store = LiveStore(stats, fleet)

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, height=60,
                      color_system=None, legacy_windows=False)
    table = TableSink(console, store, FakeSource([]), StateOptions(groups(CATALOGUE), 300.0))
    for start in range(0, len(records), 50):
        for record in records[start:start + 50]:
            store.write(record)
        for sink in (store, table):
            sink.flush()
            sink.tick(time.monotonic() + start)  # a redraw each batch
    table.close()
    drawn = screen.getvalue()
    assert "EH\\x1b]0" in drawn  # the serial, made visible (and cropped to its column)
    for unsafe in ("\x1b]", "\x1b[2J", "\x07", "\u202e", "\x9b", "\x85"):
        assert unsafe not in drawn, repr(unsafe)
    lines = state_lines(fleet, groups(CATALOGUE), 100, 500, time.monotonic(), 300.0)
    for line in lines:
        assert not any(char in line.plain for char in UNSAFE), line.plain
    text = summary(stats, 1.0, 100)
    assert not any(char in text for char in UNSAFE)
    assert f"{len(records):,} messages" in text


# -- through the real broker and the real process -------------------------------------------

BROKER_CASES = [
    ("EH000001.O.89", f'{{"Timestamp": {STAMP}, "Value": -1}}'),
    ("EH000001.O.120",
     f'{{"Timestamp": {STAMP}, "Value": {"[" * READABLE_DEEP + "]" * READABLE_DEEP}}}'),
    ("EH000001.O.128", f'{{"Timestamp": {STAMP}, "Value": "\\ud800"}}'),
    ("EH000001.P", '"\\ud800"'),
    ("EH000001.O.120", f'{{"Timestamp": {STAMP}, "Value": NaN}}'),
    ("EH000001.O.128", f'{{"Timestamp": {STAMP}, "Value": "\\u001b]0;OWNED\\u0007\\u001b[2J"}}'),
    ("EH\x1b]0;OWNED\x07\x1b[2J.O.120", f'{{"Timestamp": {STAMP}, "Value": 1.5}}'),
    ("EH000001.O.120", f'{{"Timestamp": {STAMP}, "Value": 2.5}}'),
]


def _publish_hostile(queue: BrokerQueue, rabbit: RabbitBroker) -> int:
    messages: list[tuple[str, bytes | str, None]] = [(key, body, None)
                                                     for key, body in BROKER_CASES]
    queue.publish_many(messages)
    with rabbit.channel() as channel:  # a routing key that is not UTF-8
        channel.basic_publish(queue.exchange, b"EH\xff\xfe.O.120",
                              f'{{"Timestamp": {STAMP}, "Value": 3.5}}'.encode())
    return len(messages) + 1


@pytest.mark.parametrize("save", [False, True])
def test_hostile_messages_through_the_broker_are_shown_saved_and_acked(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Any, save: bool
) -> None:
    count = _publish_hostile(queue, rabbit)
    saved = tmp_path / "saved.jsonl"
    result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                     "--ca-file", str(cli.certs.ca_file), "--jsonl", "--count", str(count),
                     *(["--save", str(saved)] if save else []), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = [json.loads(line, parse_constant=_no_constants)
             for line in result.stdout.splitlines()]
    assert len(lines) == count
    assert lines[0]["value"] == -1 and lines[0]["label"] is None
    assert lines[1]["kind"] == "error" and "nested deeper" in lines[1]["error"]
    assert lines[2]["value"] == "\ufffd" and lines[3]["value"] == "\ufffd"
    assert lines[4]["value"] is None and "value was NaN" in " ".join(lines[4]["notes"])
    assert lines[5]["value"] == "\x1b]0;OWNED\x07\x1b[2J"  # JSON keeps it, escaped
    assert lines[6]["charger"] == "EH\x1b]0;OWNED\x07\x1b[2J"
    assert lines[-1]["routing_key"] == "EH\\xff\\xfe.O.120" and lines[-1]["value"] == 3.5
    if save:
        assert saved.read_text() == result.stdout
    assert queue.depth() == 0  # nothing poisoned the queue: all acked, all shown


@pytest.mark.parametrize("view", ["stream", "state"])
def test_hostile_messages_in_the_live_table(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, terminal: Any, view: str
) -> None:
    count = _publish_hostile(queue, rabbit)
    screen = terminal([cli.executable, "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                       "--ca-file", str(cli.certs.ca_file), "--count", str(count),
                       "--view", view])
    shown = screen.wait_for(lambda text: "EXIT=" in text, timeout=60)
    assert "EXIT=0" in shown, shown
    assert "EH\\x1b]0;OWNED\\x07\\x1b[2J" in shown  # the serial, escapes made visible
    assert "Traceback" not in shown
    raw = screen.screen(escapes=True)
    assert "OWNED\x07" not in raw
    assert queue.depth() == 0

