"""What the real Easee cloud sends, as eight public clients read it: Double types where the
AMQP document says Integer, SignalR's ProductUpdate shape, old values sent again (stale,
repeated), enum labels the document leaves out, and Equalizers, whose numbers mean other
things. Each on the real broker through the installed script, and each from a capture
through `replay` (and `timeline`, `sessions`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from easee_tail.catalogue import load
from tests.conftest import BrokerQueue, Lines, Runner
from tests.harness.rabbit import RabbitBroker
from tests.harness.terminal import Terminal

SOURCES = json.loads((Path(__file__).resolve().parents[1] / "easee_tail" / "data"
                      / "sources.json").read_text())


def now_text(seconds_ago: float = 0.0) -> str:
    moment = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def observation(value: object, measured_ago: float = 1.0) -> str:
    return json.dumps({"Timestamp": now_text(measured_ago), "Value": value})


def arrived() -> dict[str, object]:
    return {"ArrivalTime": now_text()}


def product_update(serial: str, data_type: int, number: int, value: str,
                   measured_ago: float = 1.0) -> dict[str, object]:
    return {"mid": serial, "dataType": data_type, "id": number,
            "timestamp": now_text(measured_ago), "value": value}


def consume(cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, *more: str
            ) -> list[dict[str, Any]]:
    """What is waiting in the queue, as JSON lines (the run ends at the end of the backlog)."""
    result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                     "--ca-file", str(cli.certs.ca_file), "--jsonl", "-e", *more)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def replay(cli: Runner, path: Path, *more: str) -> list[dict[str, Any]]:
    result = cli.run("replay", str(path), "--jsonl", *more)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def by_id(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {record["id"]: record for record in records}


def test_ids_the_sources_type_double_take_fractions_without_a_note(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    queue.publish_many([
        ("EH12345A.O.150", observation(23.5), arrived()),  # TempMax: Integer in the document
        ("EH12345A.O.104", observation(20), arrived()),  # CableRating: a whole number
        ("EH12345A.O.164", observation(41.25), arrived()),  # TempRelayN
        ("EH12345A.O.211", observation(5.02), arrived()),  # VoltLevel5
        ("EH12345A.O.105", observation(11.8), arrived()),  # PilotHigh
        ("EH12345A.O.132", observation(-61.5), arrived()),  # WiFiRSSI: Integer everywhere
    ])
    saved = tmp_path / "types.jsonl"
    records = by_id(consume(cli, rabbit, queue, "--save", str(saved)))
    for number, value in ((150, 23.5), (104, 20.0), (164, 41.25), (211, 5.02), (105, 11.8)):
        assert records[number]["value"] == value and records[number]["type"] == "Double"
        assert records[number]["notes"] == [], records[number]
    assert records[104]["unit"] is None  # no source says amperes for certain
    assert records[150]["unit"] == "°C"
    assert "is not a valid Integer" in " ".join(records[132]["notes"])  # still told there
    # a capture of them reads back the same, and a SignalR log line of TempMax as text too
    lines = saved.read_text()
    log = tmp_path / "signalr.jsonl"
    log.write_text(lines + json.dumps(product_update("EH12345A", 3, 150, "23.5")) + "\n")
    again = replay(cli, log)
    assert again[:6] == [json.loads(line) for line in lines.splitlines()]
    assert again[6]["id"] == 150 and again[6]["value"] == 23.5 and again[6]["notes"] == []


def test_the_catalogue_says_who_says_what(cli: Runner) -> None:
    entry = json.loads(cli.run("observations", "150", "--json").stdout)
    says = {claim["says"]: claim["by"] for claim in entry["sources"]}
    assert entry["type"] == "Double"
    assert "easee-template" in says["type Double"] and "evcc" in says["type Double"]
    assert says["type Integer"] == ["amqp-doc"]
    text = cli.run("observations", "104").stdout
    assert "sources:" in text and "REST fixture shows 20000.0" in text
    # every source the data names is one sources.json describes
    for kind in load().kinds():
        for found in kind:
            for claim in found.claims:
                assert set(claim.sources) <= SOURCES.keys(), (found.id, claim)
    doubled = [found.id for found in load() if "Integer" in found.types and found.type == "Double"]
    assert sorted(doubled) == [104, 105, 106, 150, 151, 152, 153, 154, 155, 160, 161, 162,
                               163, 164, 165, 166, 170, 210, 211, 212]


def test_signalr_product_updates_are_observations(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    updates = [
        product_update("EH12345B", 2, 31, "True"),  # IsEnabled
        product_update("EH12345B", 2, 30, "0"),  # LockCablePermanently
        product_update("EH12345B", 2, 102, "on"),  # SmartCharging
        product_update("EH12345B", 2, 103, "YES"),  # CableLocked
        product_update("EH12345B", 4, 109, "3"),  # ChargerOpMode
        product_update("EH12345B", 3, 120, "7.25"),  # TotalPower
        product_update("EH12345B", 6, 251, "SERVER_INITIATED_DISCONNECT"),
        product_update("EH12345B", 4, 4242, "17"),  # not catalogued: typed by its dataType
    ]
    # as a bridge puts them on the queue: under any routing key, with or without ArrivalTime
    queue.publish_many([("bridge.signalr", json.dumps(update), arrived() if n % 2 else None)
                        for n, update in enumerate(updates)])
    records = by_id(consume(cli, rabbit, queue))
    assert all(record["kind"] == "observation" and record["charger"] == "EH12345B"
               for record in records.values())
    assert [records[n]["value"] for n in (31, 30, 102, 103)] == [True, False, True, True]
    assert records[109]["value"] == 3 and records[109]["label"] == "Charging"
    assert records[120]["value"] == 7.25 and records[120]["name"] == "TotalPower"
    assert records[251]["value"] == "SERVER_INITIATED_DISCONNECT"
    assert records[4242]["value"] == 17 and records[4242]["name"] == "Unknown"
    assert records[4242]["type"] == "Integer"
    assert records[30]["latency_ms"] is not None and records[31]["latency_ms"] is None
    # the same lines as an evcc or pyeasee log: replay reads them, filters and all
    log = tmp_path / "productupdates.jsonl"
    log.write_text("".join(json.dumps(update) + "\n" for update in updates))
    replayed = replay(cli, log, "--obs", "ChargerOpMode,IsEnabled")
    assert [(record["id"], record["value"]) for record in replayed] == [(31, True), (109, 3)]
    timeline = cli.run("timeline", str(log), "--text")
    assert timeline.returncode == 0, timeline.stderr
    assert "EH12345B" in timeline.stdout and "Charging" in timeline.stdout


def test_old_values_sent_again_are_marked_everywhere_and_change_nothing(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    hour_ago = json.dumps({"Timestamp": now_text(3600), "Value": 3})
    fresh = observation(4, 1.0)
    queue.publish_many([
        ("EH12345C.O.109", observation(3, 30.0), arrived()),  # Charging, then Completed
        ("EH12345C.O.109", fresh, arrived()),
        ("EH12345C.O.109", hour_ago, arrived()),  # the cloud's replay of an old value
        ("EH12345C.O.109", fresh, arrived()),  # and of the last one, minutes later
    ])
    saved = tmp_path / "again.jsonl"
    records = consume(cli, rabbit, queue, "--save", str(saved))
    assert [(r["value"], r["stale"], r["repeated"]) for r in records] == [
        (3, False, False), (4, False, False), (3, True, False), (4, False, True)]
    assert any(note.startswith("stale: measured 1h 0m before it reached the cloud")
               for note in records[2]["notes"])
    assert any(note.startswith("repeated: the same value and Timestamp")
               for note in records[3]["notes"])
    # a wider bound: not stale
    queue.publish("EH12345C.O.109", hour_ago, arrived())
    assert consume(cli, rabbit, queue, "--stale-after", "2h")[0]["stale"] is False
    # the capture's timeline: Charging, then Completed; neither sent-again value is a change
    timeline = cli.run("timeline", str(saved), "--json")
    assert timeline.returncode == 0, timeline.stderr
    changes = [(c["value"], c["before"]) for c in map(json.loads, timeline.stdout.splitlines())]
    assert changes == [(3, None), (4, "3 Charging")], changes
    # and a replay keeps the marks
    assert [(r["stale"], r["repeated"]) for r in replay(cli, saved)] == [
        (False, False), (False, False), (True, False), (False, True)]


def test_sent_again_counted_in_the_stats_metrics_and_table(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    old = json.dumps({"Timestamp": now_text(7200), "Value": 6})
    queue.publish_many([("EH12345D.O.109", old, arrived()), ("EH12345D.O.109", old, arrived())])
    process = cli.popen("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                        "--ca-file", str(cli.certs.ca_file), "--jsonl", "--metrics", "0",
                        "--stats-interval", "0.2", "--idle-timeout", "30")
    assert process.stderr is not None
    errors = Lines(process.stderr)
    try:
        url = re.search(r"http://\S+/metrics", errors.wait_for("metrics for Prometheus at"))
        assert url is not None
        stats = json.loads(errors.wait_for('"stale":2'))
        assert stats["repeated"] == 1
        text = requests.get(url.group(0), timeout=10).text
        assert "easee_tail_stale_messages_total 2.0" in text
        assert "easee_tail_repeated_messages_total 1.0" in text
    finally:
        process.terminate()
        process.wait(timeout=10)
    # the table: the row says it, the header counts it
    queue.publish_many([("EH12345D.O.109", old, arrived()), ("EH12345D.O.109", old, arrived())])
    screen = Terminal.open(140, 30)
    try:
        screen.run([cli.executable, "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                    "--ca-file", str(cli.certs.ca_file), "--count", "2"])  # a new memory
        shown = screen.wait_for(lambda s: "EXIT=0" in s)
    finally:
        screen.close()
    assert "[stale 2h 0m]" in shown and "[stale 2h 0m, repeated]" in shown
    assert "sent again: 2 stale, 1 repea" in shown  # the header (cropped at 140 columns)
    assert re.search(r"sent again: +2 stale, 1 repeated \(old values", shown)  # the summary


def test_the_live_timeline_takes_no_old_value_for_a_change(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    screen = Terminal.open(140, 30)
    try:
        screen.run([cli.executable, "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                    "--ca-file", str(cli.certs.ca_file), "--view", "timeline"])
        screen.wait_for(lambda s: "no change of state yet" in s)
        queue.publish_many([
            ("EH12345E.O.109", json.dumps({"Timestamp": now_text(600), "Value": 3}),
             arrived()),  # a replay on subscribing: what was, not a change
            ("EH12345E.O.109", observation(4), arrived()),
            ("EH12345E.O.109", json.dumps({"Timestamp": now_text(900), "Value": 1}),
             arrived()),  # an older one still: no change back
            ("EH12345E.O.96", observation(0), arrived()),
        ])
        shown = screen.wait_for(lambda s: "ReasonForNoCurrent" in s)
        screen.press("C-c")
        screen.wait_for(lambda s: "EXIT=" in s)
    finally:
        screen.close()
    lines = [line for line in shown.splitlines() if re.match(r"\d\d:\d\d:\d\d EH12345E", line)]
    assert len(lines) == 2, shown
    assert re.search(r"ChargerOpMode +4 Completed +\(was 3 Charging for (9m 5\ds|10m)",
                     lines[0]), lines
    assert "Disconnected" not in shown


def test_sessions_sent_again_are_counted_once(cli: Runner, tmp_path: Path) -> None:
    start = {"Id": 7, "MeterValue": 100.0, "Start": now_text(3600), "Auth": "", "AuthReason": 0}
    end = {"Id": 7, "Start": now_text(3600), "Stop": now_text(1800), "EnergyKwh": 5.5,
           "MeterValueStart": 100.0, "MeterValueStop": 105.5, "Auth": "", "AuthReason": 0}
    updates = [product_update("EH12345F", 6, 223, json.dumps(start), 3600),
               product_update("EH12345F", 6, 129, json.dumps(end), 1800)]
    log = tmp_path / "twice.jsonl"
    # the same two lines twice: a capture of a restart, when the cloud sent them again
    log.write_text("".join(json.dumps(update) + "\n" for update in updates * 2))
    found = cli.run("sessions", str(log), "--json")
    assert found.returncode == 0, found.stderr
    sessions = [json.loads(line) for line in found.stdout.splitlines()]
    assert len(sessions) == 1 and sessions[0]["energy_kwh"] == 5.5, sessions


def test_labels_the_document_leaves_out(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    values: list[tuple[int, object]] = [(21, 0), (38, 2), (45, 1), (100, "C"), (89, 12), (89, 16)]
    queue.publish_many([(f"EH12345G.O.{number}", observation(value), arrived())
                        for number, value in values])
    records = consume(cli, rabbit, queue)
    labels = [record["label"] for record in records]
    assert labels == [
        "not yet detected", "automatic", "charge offline for whitelisted tokens only",
        "charging",
        # RebootReason: bits (the document's "bitmask") and one code (node-red's reading),
        # the bits alone where no source reads the value as one code
        "as bits: pin reset, brown-out; as one code: brown-out", "software reset"]
    log = tmp_path / "labels.jsonl"
    log.write_text(json.dumps(product_update("EH12345G", 6, 100, "F")) + "\n"
                   + json.dumps(product_update("EH12345G", 4, 38, "3")) + "\n")
    assert [r["label"] for r in replay(cli, log)] == ["fault", "locked to 3-phase"]
    shown = cli.run("observations", "89").stdout
    assert "read as one code:" in shown and "12  brown-out" in shown


def test_equalizers_are_read_with_their_own_list(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    queue.publish_many([
        ("QP12345H.O.31", observation(12.5), arrived()),  # an Equalizer's current on L1
        ("QP12345H.O.40", observation(3.2), arrived()),  # ActivePowerImport
        ("QP12345H.O.109", observation(3), arrived()),  # no such number on an Equalizer
        ("EH12345H.O.31", observation(True), arrived()),  # a charger's IsEnabled
    ])
    records = consume(cli, rabbit, queue)
    names = [(r["charger"], r["name"], r["unit"], r["value"]) for r in records]
    assert names == [("QP12345H", "Current_L1", "A", 12.5),
                     ("QP12345H", "ActivePowerImport", "kW", 3.2),
                     ("QP12345H", "Unknown", None, 3), ("EH12345H", "IsEnabled", None, True)]
    assert "equalizer" in records[0]["tags"] and records[0]["notes"] == []
    assert "not in the catalogue of the equalizer" in records[2]["notes"][0]
    assert records[2]["label"] is None  # no charger's op mode label on it
    # --tag picks a kind; an Equalizer's name resolves in its list
    queue.publish_many([("QP12345H.O.31", observation(12.6), arrived()),
                        ("EH12345H.O.31", observation(False), arrived())])
    assert [r["charger"] for r in consume(cli, rabbit, queue, "--tag", "equalizer")] == [
        "QP12345H"]
    listing = json.loads(cli.run("observations", "--device", "equalizer", "Current_L1",
                                 "--json").stdout)
    assert listing["id"] == 31 and listing["device"] == "equalizer"
    # a SignalR log of an Equalizer, replayed
    log = tmp_path / "equalizer.jsonl"
    log.write_text(json.dumps(product_update("QP12345H", 3, 34, "231.5")) + "\n")
    assert [(r["name"], r["value"]) for r in replay(cli, log)] == [("Voltage_N_L1", 231.5)]


def test_the_state_view_gives_no_equalizer_number_a_chargers_meaning(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    queue.publish_many([("QP12345J.O.31", observation(12.5), arrived()),
                        ("EH12345J.O.31", observation(True), arrived())])
    screen = Terminal.open(140, 30)
    try:
        screen.run([cli.executable, "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                    "--ca-file", str(cli.certs.ca_file), "--view", "state"])
        shown = screen.wait_for(lambda s: "QP12345J" in s and "EH12345J" in s)
        screen.press("C-c")
        screen.wait_for(lambda s: "EXIT=" in s)
    finally:
        screen.close()
    lines = shown.splitlines()
    equalizer = lines[next(n for n, line in enumerate(lines) if line.startswith("QP12345J")) + 1]
    assert re.search(r"other\s+Current_L1 12\.5 A", equalizer), shown
    assert "enabled" not in equalizer
    assert re.search(r"status\s+.*enabled true", shown)
