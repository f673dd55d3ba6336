"""Include and exclude: charger globs, `!` exclusions, catalogue tags, --where conditions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from easee_tail.catalogue import load
from easee_tail.decode import decode
from easee_tail.filters import Condition, FilterSpec, build_filter
from easee_tail.model import RECORD_FIELDS, Delivery, Observation, Record
from easee_tail.params import parse_moment
from tests.conftest import Runner

CATALOGUE = load()


def record(charger: str, obs: int, value: str = "1") -> Record:
    body = f'{{"Timestamp": "2026-11-26T10:00:00Z", "Value": {value}}}'.encode()
    return decode(Delivery(f"{charger}.O.{obs}", body, None, 1_795_000_000.0), CATALOGUE)


def kept(spec: FilterSpec, *records: Record) -> list[tuple[str | None, int | None]]:
    keep = build_filter(spec)
    assert keep is not None
    return [(r.charger, r.id) for r in records if keep(r)]


def test_charger_globs_are_case_insensitive_and_exclusions_win() -> None:
    records = [record("EHAAAAAA", 120), record("ECBBBBBB", 120), record("EHCCCCCC", 120)]
    assert kept(FilterSpec(chargers=("eh*",)), *records) == [("EHAAAAAA", 120),
                                                            ("EHCCCCCC", 120)]
    assert kept(FilterSpec(chargers=("EH*",), not_chargers=("ehcccccc",)), *records) == [
        ("EHAAAAAA", 120)]
    assert kept(FilterSpec(not_chargers=("E?BBBBBB",)), *records) == [("EHAAAAAA", 120),
                                                                      ("EHCCCCCC", 120)]


def test_observation_exclusions_and_tags() -> None:
    records = [record("EH1", 120, "7.5"), record("EH1", 109, "3"), record("EH1", 21, "1")]
    assert kept(FilterSpec(not_observations=(120,)), *records) == [("EH1", 109), ("EH1", 21)]
    assert kept(FilterSpec(tags=("telemetry",)), *records) == [("EH1", 120)]
    assert kept(FilterSpec(not_tags=("telemetry", "boot")), *records) == [("EH1", 109)]


@pytest.mark.parametrize(("condition", "value", "holds"), [
    ("value != 0", "0", False), ("value != 0", "3", True), ("value > 2.5", "3", True),
    ("value <= 2", "3", False), ("value == 3", '"3"', True), ("label ~ charg", "3", True),
    ("label == null", "3", False), ("unit == null", "3", True), ("value > 1", '"abc"', False),
    ("value = 3", "3", True),
])
def test_where_conditions(condition: str, value: str, holds: bool) -> None:
    check = Condition.parse(condition, RECORD_FIELDS)
    assert check(record("EH1", 109, value)) is holds


@pytest.mark.parametrize("text", ["value", "value !! 3", "nope == 1", "== 3"])
def test_a_bad_condition_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Condition.parse(text, RECORD_FIELDS)


def test_error_records_pass_what_they_cannot_be_judged_on() -> None:
    error = decode(Delivery("EH1.O.120", b"garbage", None, 1_795_000_000.0), CATALOGUE)
    assert kept(FilterSpec(tags=("telemetry",)), error) == [("EH1", 120)]


def test_include_and_exclude_end_to_end(cli: Runner, tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    made = cli.run("demo", "-c", "400", "--rate", "5000", "--seed", "9", "-w", str(capture),
                   "-j")
    assert made.returncode == 0, made.stderr
    records = [json.loads(line) for line in capture.read_text().splitlines()]
    serial = records[0]["charger"]
    result = cli.run("replay", str(capture), "-j", "-s", f"{serial[:2].lower()}*",
                     "-s", f"!{serial}", "-o", "!TotalPower", "--tag", "!boot",
                     "--where", "latency_ms >= 0")
    assert result.returncode == 0, result.stderr
    shown = [json.loads(line) for line in result.stdout.splitlines()]
    expected = [r for r in records if r["charger"].startswith(serial[:2])
                and r["charger"] != serial and r["id"] != 120 and "boot" not in r["tags"]
                and r["latency_ms"] is not None and r["latency_ms"] >= 0]
    assert shown == expected and expected


NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "moment"), [
    ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, 0, tzinfo=UTC)),
    ("2026-11-26T11:00:00+01:00", datetime(2026, 11, 26, 10, 0, tzinfo=UTC)),
    ("2h", datetime(2026, 11, 26, 10, 0, tzinfo=UTC)),
    ("90m", datetime(2026, 11, 26, 10, 30, tzinfo=UTC)),
])
def test_a_moment_is_iso_or_a_duration_ago(text: str, moment: datetime) -> None:
    assert parse_moment(text, NOW) == moment


def test_a_clock_time_and_a_naive_iso_time_are_local() -> None:
    local = NOW.astimezone()
    at = parse_moment(f"{local.hour:02d}:{local.minute:02d}", NOW)
    assert at == NOW
    naive = parse_moment(local.replace(tzinfo=None).isoformat(), NOW)
    assert naive == NOW


@pytest.mark.parametrize("text", ["yesterday", "25:00", "2026-13-01", "-2h", ""])
def test_what_is_not_a_moment_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_moment(text, NOW)


def test_since_and_until_judge_the_chosen_time() -> None:
    early, late = record("EH1", 120), record("EH1", 120)
    assert isinstance(early, Observation) and isinstance(late, Observation)
    early.timestamp = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    late.timestamp = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    ten = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert kept(FilterSpec(since=ten), early, late) == [("EH1", 120)]
    keep = build_filter(FilterSpec(until=ten))
    assert keep is not None and keep(early) and not keep(late)
    by_arrival = build_filter(FilterSpec(since=ten, time_field="arrival"))
    assert by_arrival is not None and by_arrival(early)  # no ArrivalTime: kept, not judged


def test_a_time_window_on_a_capture_and_until_on_a_live_stream(
    cli: Runner, tmp_path: Path
) -> None:
    capture = tmp_path / "capture.jsonl"
    lines = []
    for hour in range(6, 12):
        lines.append(json.dumps({
            "kind": "observation", "charger": "EHWINDOW", "id": 120, "name": "TotalPower",
            "value": float(hour), "unit": "kW", "label": None, "type": "Double",
            "tags": ["telemetry"], "timestamp": f"2026-11-26T{hour:02d}:00:00Z",
            "arrival": None, "received": "2026-11-26T12:00:00Z", "latency_ms": None,
            "routing_key": "EHWINDOW.O.120", "redelivered": False, "raw": None, "notes": []}))
    capture.write_text("\n".join(lines) + "\n")
    result = cli.run("replay", str(capture), "-j", "--since", "2026-11-26T08:00:00Z",
                     "--until", "2026-11-26T10:00:00Z")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["value"] for line in result.stdout.splitlines()] == [8.0, 9.0,
                                                                                 10.0]
    by_received = cli.run("replay", str(capture), "-j", "--since", "2026-11-26T08:00:00Z",
                          "--time-field", "received")
    assert len(by_received.stdout.splitlines()) == 6
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    live = cli.run("demo", "-j", "--rate", "50", "--until", soon, timeout=60)
    assert live.returncode == 0 and live.stdout  # ended by the clock, exit 0
    past = cli.run("demo", "--until", "1h")
    assert past.returncode == 2 and "is in the past" in past.stderr
