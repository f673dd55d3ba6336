"""Why did this charger stop? timeline and sessions on a capture of the seeded demo fleet,
whose chargers have their trouble scripted, and the fleet's own invariants."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from easee_tail.fleet import Fleet
from easee_tail.times import parse_time
from tests.conftest import TOKEN, BrokerQueue, Runner, api_args
from tests.harness.terminal import Terminal

SEED = 11
FLEET = Fleet(7, seed=SEED)
SERIAL = {charger.trouble: charger.serial for charger in FLEET.chargers}  # trouble: serial


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory, easee_tail: str) -> Path:
    """A day or so of the seeded fleet (7 chargers: one without trouble, one of each kind)."""
    path = tmp_path_factory.mktemp("story") / "fleet.jsonl"
    made = Runner(easee_tail, None).run(  # type: ignore[arg-type]
        "demo", "--seed", str(SEED), "--chargers", "7", "--rate", "20000",
        "--time-scale", "100000", "-c", "30000", "-j", "-w", str(path), timeout=120)
    assert made.returncode == 0, made.stderr
    return path


def sessions(cli: Runner, capture: Path, *args: str) -> list[dict[str, object]]:
    result = cli.run("sessions", str(capture), *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_sessions_say_how_each_ended(cli: Runner, capture: Path) -> None:
    found = sessions(cli, capture)
    endings: dict[object, list[str]] = {}
    for session in found:
        endings.setdefault(session["charger"], []).append(str(session["ended"]))
    # each charger's scripted trouble ends (at least) its first session, in its words
    assert re.fullmatch(r"error \d+: .+", endings[SERIAL["error"]][0])
    assert re.fullmatch(r"reboot \((software reset|brown-out|independent watchdog)\)",
                        endings[SERIAL["reboot"]][0])
    assert re.fullmatch(r"cloud lost \([A-Z_]+\)", endings[SERIAL["cloud"]][0])
    assert endings[SERIAL["rfid"]][0].startswith("not authorised (token ")
    balanced = [s for s in found if s["charger"] == SERIAL["loadbalance"]]
    assert "limited by dynamic circuit current" in balanced[0]["limits"]  # type: ignore[operator]
    ordinary = {"car full", "cable pulled while charging", "stopped by schedule",
                "stopped by user (charger disabled)", "open"}
    assert set(endings[SERIAL[None]]) <= ordinary and len(set(endings[SERIAL[None]])) >= 2
    assert endings[SERIAL[None]][-1] == "open" or all(s["stop"] for s in found)
    for session in found:  # plausible and consistent, whoever ended it
        if session["ended"] == "open" or str(session["ended"]).startswith("not authorised"):
            continue
        lasted, energy = session["duration_s"], session["energy_kwh"]
        assert isinstance(lasted, float) and isinstance(energy, float), session
        assert 60 <= lasted <= 4 * 3600 and 0 < energy <= 23 * lasted / 3600, session
        assert session["peak_kw"] and 3 <= session["peak_kw"] <= 23  # type: ignore[operator]


def test_a_silent_charger_stops_telling(cli: Runner, capture: Path) -> None:
    records = [json.loads(line) for line in capture.read_text().splitlines()]
    last = {record["charger"]: parse_time(record["timestamp"]) for record in records}
    silent = last.pop(SERIAL["silent"])
    assert silent is not None and all(
        moment is not None and (moment - silent).total_seconds() > 3600 for moment in
        last.values())


def test_timeline_tells_the_error_with_how_long_each_state_held(
    cli: Runner, capture: Path
) -> None:
    result = cli.run("timeline", str(capture), "-s", SERIAL["error"].lower(), "--json")
    assert result.returncode == 0, result.stderr
    changes = [json.loads(line) for line in result.stdout.splitlines()]
    assert {change["charger"] for change in changes} == {SERIAL["error"]}
    times = [datetime.fromisoformat(change["time"]) for change in changes]
    assert times == sorted(times)  # the charger's own clock
    names = [change["name"] for change in changes]
    error = names.index("ErrorCode")
    assert changes[error]["value"] != 0 and names[error + 1] == "ErrorString"
    faulted = next(c for c in changes[error:] if c["name"] == "ChargerOpMode")
    assert faulted["label"] == "Error" and faulted["before"] == "3 Charging"
    assert faulted["lasted_s"] > 60 and faulted["energy_kwh"] > 0 and faulted["peak_kw"] > 3
    # a repeated value is no change: no two neighbours of one observation are equal
    last: dict[str, object] = {}
    for change in changes:
        if change["id"] not in (223, 129, 60):
            assert last.get(change["name"], object()) != change["value"], change
            last[change["name"]] = change["value"]
    assert "TotalPower" not in names and "WiFiRSSI" not in names  # telemetry is not listed


def test_timeline_obs_and_time_window(cli: Runner, capture: Path) -> None:
    full = cli.run("timeline", str(capture), "-s", SERIAL["reboot"], "-o", "109,RebootReason")
    changes = [json.loads(line) for line in full.stdout.splitlines()]
    assert {change["name"] for change in changes} == {"ChargerOpMode", "RebootReason"}
    middle = changes[len(changes) // 2]["time"]
    later = cli.run("timeline", str(capture), "-s", SERIAL["reboot"], "-o", "109,89",
                    "--since", middle)
    kept = [json.loads(line) for line in later.stdout.splitlines()]
    assert kept and all(change["time"] >= middle for change in kept)
    assert len(kept) < len(changes)
    stdin = cli.run("timeline", "-", "-s", SERIAL["reboot"], "-o", "109,89",
                    input=capture.read_text())
    assert stdin.stdout == full.stdout
    wrong = cli.run("timeline", str(capture), "-o", "9999")
    assert wrong.returncode == 2 and "no observation has id '9999'" in wrong.stderr


def test_on_a_terminal_the_story_reads_as_text(
    cli: Runner, capture: Path, terminal: Callable[..., Terminal]
) -> None:
    screen = terminal([cli.executable, "timeline", str(capture), "-s", SERIAL["error"],
                       "-o", "ChargerOpMode,ErrorCode,ErrorString", "--until",
                       _first_error_end(cli, capture)], height=60, width=140)
    shown = screen.wait_for(lambda s: "EXIT=0" in s)
    assert re.search(rf"^{SERIAL['error']}  \d+ changes$", shown, re.M)
    assert re.search(r"ErrorCode +\d+ +\(was 0 for|ErrorCode +\d+ +\(first heard\)", shown)
    assert re.search(r"ChargerOpMode +5 Error +\(was 3 Charging for (\d+h )?\d+m \d+s: "
                     r"\d+\.\d\d kWh, peak [\d.]+ kW\)", shown), shown
    table = terminal([cli.executable, "sessions", str(capture), "-s", SERIAL["error"]],
                     width=160, height=60)
    listed = table.wait_for(lambda s: "EXIT=0" in s)
    assert "how it ended" in listed and re.search(r"error \d+: \w+", listed)


def _first_error_end(cli: Runner, capture: Path) -> str:
    found = sessions(cli, capture, "-s", SERIAL["error"])
    return str(found[0]["stop"])


@pytest.mark.parametrize(("seed", "scale"), [(1, 1.0), (2, 60.0), (3, 3600.0)])
def test_the_fleet_keeps_its_invariants_over_a_long_run(seed: int, scale: float) -> None:
    fleet = Fleet(12, seed=seed, time_scale=scale)
    last: dict[str, datetime] = {}
    lifetime: dict[str, float] = {}
    started: dict[str, dict[str, object]] = {}
    mode: dict[str, int] = {}
    sessions_seen = 0
    received = 0.0
    for _moment, message in itertools.islice(fleet.messages(1_790_000_000.0, 2000), 150_000):
        serial, _kind, number = message.routing_key.split(".")
        body = json.loads(message.body)
        stamp = parse_time(body["Timestamp"])
        arrival = parse_time(message.headers["ArrivalTime"])
        assert stamp is not None and arrival is not None
        assert stamp > last.get(serial, datetime.min.replace(tzinfo=stamp.tzinfo))
        assert stamp <= arrival and arrival.timestamp() <= message.received + 1e-3
        assert message.received >= received  # one queue: received in order
        last[serial], received = stamp, message.received
        value = body["Value"]
        if number == "124":
            assert value >= lifetime.get(serial, 0.0) - 1e-3
            lifetime[serial] = value
        elif number == "109":
            mode[serial] = value
        elif number == "223":
            session = json.loads(value)
            assert parse_time(session["Start"]) == stamp  # its start is its own moment
            assert mode.get(serial) == 7  # authorised, not yet charging
            started[serial] = session
        elif number == "129":
            session = json.loads(value)
            opened = started.pop(serial)
            assert session["Id"] == opened["Id"] and session["Start"] == opened["Start"]
            assert parse_time(session["Stop"]) == stamp
            assert abs(session["MeterValueStop"] - session["MeterValueStart"]
                       - session["EnergyKwh"]) < 2e-3
            assert session["MeterValueStart"] == opened["MeterValue"]
            lasted = (stamp - parse_time(session["Start"])).total_seconds()  # type: ignore[operator]
            assert lasted >= 60 and session["EnergyKwh"] <= 23 * lasted / 3600
            sessions_seen += 1
        elif number == "120" and value > 0:
            assert serial in started  # power only inside a session
    # 150,000 messages: a little over an hour of the fleet at 60x, days at 3600x
    assert sessions_seen >= {1.0: 0, 60.0: 5, 3600.0: 50}[scale]


def test_the_live_timeline_view_and_the_view_key_cycles_three_views(
    cli: Runner, terminal: Callable[..., Terminal]
) -> None:
    screen = terminal([cli.executable, "demo", "--chargers", "7", "--seed", str(SEED),
                       "--time-scale", "600", "--rate", "50", "--view", "timeline"])
    story = screen.wait_for(lambda s: "(was 3 Charging for" in s and "kWh, peak" in s,
                            timeout=60)
    assert "timeline view · v: next" in story and "ChargingSessionStart" in story
    assert re.search(r"^\d\d:\d\d:\d\d [A-Z0-9]{8} ChargerOpMode +\d ", story, re.M)
    assert "TotalPower" not in story.split("per charger")[1]  # telemetry is not listed
    screen.press("v")
    stream = screen.wait_for(lambda s: "stream view · v: next" in s)
    assert re.search(r"^received +charger +id name", stream, re.M)
    screen.press("v")
    screen.wait_for(lambda s: "state view · v: next" in s and "  status" in s)
    screen.press("v")
    screen.wait_for(lambda s: "timeline view · v: next" in s and "(was " in s)
    screen.press("C-c")
    screen.wait_for(lambda s: "EXIT=130" in s)


def test_the_time_column_shows_the_clock_asked_for(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, terminal: Callable[..., Terminal]
) -> None:
    measured = datetime(2026, 11, 24, 12, 0, 0, 250000, tzinfo=UTC)
    arrived = measured + timedelta(seconds=1.5)
    queue.publish("EHCLOCK1.O.109", json.dumps({
        "Timestamp": measured.isoformat(), "Value": 3}), {"ArrivalTime": arrived.isoformat()})
    for choice, heading, moment in (("device", "device time", measured),
                                    ("arrival", "arrival", arrived)):
        screen = terminal([cli.executable, "--token", TOKEN, *api_args(api, cli.certs), "--peek",
                           "-c", "1", "--time-column", choice], height=20)
        shown = screen.wait_for(lambda s: "EXIT=0" in s)
        local = moment.astimezone().strftime("%H:%M:%S.%f")[:-3]
        assert re.search(rf"^{heading} +charger +id name", shown, re.M), shown
        # (the second run sees it again, marked redelivered: --peek gave it back)
        assert re.search(rf"^{re.escape(local)} (↻ )?EHCLOCK1 +109 ChargerOpMode", shown, re.M)
    refused = cli.run("demo", "-j", "--time-column", "device", "-c", "1")
    assert refused.returncode == 2 and "--time-column picks the table's time column" \
        in refused.stderr
