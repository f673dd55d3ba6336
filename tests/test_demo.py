"""The embedded default: the demo fleet through the same pipeline and output flags."""

from __future__ import annotations

import json
from pathlib import Path

from easee_tail import catalogue
from tests.conftest import Runner


def test_demo_jsonl_is_realistic_and_every_record_is_catalogued(cli: Runner, tmp_path: Path) -> None:
    save = tmp_path / "demo.jsonl"
    # simulated time runs fast enough for sessions: 2000 messages are 5 hours of a fleet
    result = cli.run("demo", "--rate", "2000", "--count", "2000", "--seed", "7",
                     "--time-scale", "20000", "--save", str(save))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2000
    assert save.read_text() == result.stdout
    table = catalogue.load()
    for record in records:
        assert record["kind"] == "observation"
        entry = table.get(record["id"])
        assert entry is not None and record["name"] == entry.name and record["notes"] == []
        assert record["latency_ms"] is not None and 0 <= record["latency_ms"] < 1000
    names = {record["name"] for record in records}
    assert {"ChargerOpMode", "TotalPower", "ChargingSessionStart", "ChargingSession",
            "UserIDTokenReversed"} <= names
    modes = [r["label"] for r in records if r["name"] == "ChargerOpMode"]
    assert {"Disconnected", "AwaitingStart", "Charging", "Completed"} <= set(modes)
    # The reversed token reads like the plain one once turned back.
    reversed_tokens = {r["value"] for r in records if r["id"] == 108}
    plain_tokens = {r["value"] for r in records if r["id"] == 128}
    assert reversed_tokens & plain_tokens


def test_demo_sessions_add_up(cli: Runner) -> None:
    result = cli.run("demo", "--rate", "5000", "--count", "5000", "--seed", "3", "--chargers", "2",
                     "--time-scale", "20000")
    ends = [json.loads(line)["value"] for line in result.stdout.splitlines()
            if json.loads(line)["id"] == 129]
    assert ends
    for session in ends:
        metered = session["MeterValueStop"] - session["MeterValueStart"]
        assert abs(metered - session["EnergyKwh"]) < 0.01


def test_demo_filters(cli: Runner) -> None:
    result = cli.run("demo", "--rate", "3000", "--count", "20", "--obs", "TotalPower,109")
    assert result.returncode == 0
    ids = {json.loads(line)["id"] for line in result.stdout.splitlines()}
    assert ids <= {120, 109} and len(result.stdout.splitlines()) == 20


def test_stats_interval_writes_stats_lines_to_stderr(cli: Runner) -> None:
    result = cli.run("demo", "--jsonl", "--rate", "200", "--duration", "2.5",
                     "--stats-interval", "1")
    assert result.returncode == 0
    stats = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(stats) == 2 and all(line["kind"] == "stats" for line in stats)
    assert stats[0]["messages"] < stats[1]["messages"] <= len(result.stdout.splitlines())
    assert stats[1]["time"].endswith("Z") and set(stats[1]["latency_ms"]) == {
        "p50", "p95", "p99", "max"}
    assert all(json.loads(line)["kind"] != "stats" for line in result.stdout.splitlines())
    assert all('", "' not in line and '": ' not in line  # compact, like the records
               for line in result.stderr.splitlines())
