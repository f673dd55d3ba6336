"""The state view in a real terminal: latest values per charger, changes, silence, switching."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BrokerQueue, Runner, clean_env
from tests.harness.rabbit import RabbitBroker
from tests.harness.terminal import Terminal

# "op " then SGR codes, one of which turns reverse video on (7), then the value
REVERSED_COMPLETED = re.compile(r"op (?:\x1b\[[0-9;]*m)*\x1b\[(?:[0-9;]*;)?7(?:;[0-9;]*)?m"
                                r"(?:\x1b\[[0-9;]*m)*Completed")
STAMP = '"Timestamp": "2026-11-24T12:00:00Z", '


def observation(value: object) -> str:
    return "{" + STAMP + f'"Value": {json.dumps(value)}' + "}"


def block(screen: str, serial: str) -> str:
    """The lines of one charger's block in the state view."""
    lines = screen.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(serial))
    end = next((n for n in range(start + 1, len(lines)) if lines[n][:1].strip()), len(lines))
    return "\n".join(lines[start:end])


def test_state_view_shows_latest_values_changes_silence_and_switches_views(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    queue.publish_many([
        ("EHSTATEA.O.109", observation(3), None),  # ChargerOpMode Charging
        ("EHSTATEA.O.96", observation(0), None),
        ("EHSTATEA.O.120", observation(7.1), None),  # TotalPower, telemetry
        ("EHSTATEA.O.120", observation(7.4), None),
        ("EHSTATEA.O.120", observation(7.2), None),
        ("EHSTATEA.O.132", observation(-61), None),  # WiFiRSSI
        ("EHSTATEA.O.250", observation(True), None),
        ("EHSTATEA.O.251", observation("Störung 東京"), None),  # non-ASCII, wide characters
        ("EHSTATEA.O.9999", observation(42), None),  # not in the catalogue
        ("EHSTATEA.O.120", "garbage", None),
        ("ECSTATEB.O.109", observation(1), None),
        ("ECSTATEB.O.31", observation(True), None),
    ])
    screen = Terminal.open(120, 40)
    try:
        screen.run([cli.executable, "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                    "--ca-file", str(cli.certs.ca_file), "--view", "state",
                    "--silent-after", "3"], after="; stty -a | grep -o -- '-\\?icanon'")
        shown = screen.wait_for(lambda s: "EHSTATEA" in s and "ECSTATEB" in s
                                and "12 messages" in s)
        a = block(shown, "EHSTATEA")
        assert "10 messages" in a and "1 unreadable" in a
        assert re.search(r"status\s+op Charging · reason no reason", a)
        # the latest value, and a sparkline from two values up: none when the three came
        # between two foldings of the newest values (five a second), as a backlog's do
        power = re.search(r"power\s+P 7\.2 kW(?: ([▁-█]{2,3}))?(?!\S)", a)
        assert power is not None
        assert re.search(r"link\s+cloud true · last disconnect Störung 東京 · WiFi RSSI -61 dBm", a)
        assert "Unknown 42" in a  # unknown ids are shown, in the "other" line
        b = block(shown, "ECSTATEB")
        assert re.search(r"status\s+op Disconnected · enabled true", b)
        assert "power" not in b  # a group with no values is left out
        assert "per charger EHSTATEA 10 ECSTATEB 2" in shown  # per-charger counts in the header

        # a reading after the screen showed the last is one more point of the sparkline
        queue.publish("EHSTATEA.O.120", observation(3.0))
        points = len(power.group(1) or "x") + 1
        screen.wait_for(lambda s: re.search(rf"power\s+P 3 kW [▁-█]{{{points}}}(?!\S)",
                                            block(s, "EHSTATEA")) is not None)

        # A change is highlighted (reverse video) for a moment, then shown plain.
        queue.publish("EHSTATEA.O.109", observation(4))
        screen.wait_for(lambda s: "op Completed" in s)
        assert REVERSED_COMPLETED.search(screen.screen(escapes=True))
        screen.wait_for(lambda s: "Completed" in s and not REVERSED_COMPLETED.search(s),
                        escapes=True, timeout=10)

        # B keeps talking; A goes quiet and is marked silent after --silent-after.
        deadline = time.monotonic() + 20
        silent = ""
        while time.monotonic() < deadline:
            queue.publish("ECSTATEB.O.132", observation(-50))
            silent = screen.screen()
            if "SILENT" in block(silent, "EHSTATEA") and "SILENT" not in block(silent, "ECSTATEB"):
                break
            time.sleep(0.5)
        assert "SILENT, last heard" in block(silent, "EHSTATEA")
        assert "SILENT" not in block(silent, "ECSTATEB")

        screen.press("v")  # to the timeline, the stream view, and back
        story = screen.wait_for(lambda s: "timeline view · v: next" in s
                                and "(first heard)" in s)
        assert re.search(r"^\d\d:\d\d:\d\d EHSTATEA ChargerOpMode +4 Completed +\(was 3 "
                         r"Charging for", story, re.M)
        screen.press("v")
        stream = screen.wait_for(lambda s: re.search(r"^received\s+charger\s+id\s+name", s,
                                                     re.M) is not None)
        assert "easee-tail · stream view · v: next" in stream
        screen.press("v")
        screen.wait_for(lambda s: "state view · v: next, j/k: scroll" in s and "SILENT" in s)
        screen.press("C-c")
        ended = screen.wait_for(lambda s: "EXIT=" in s and "icanon" in s, timeout=10)
    finally:
        screen.close()
    assert "EXIT=130" in ended
    assert "-icanon" not in ended  # the terminal's line mode is given back
    assert "per observation: " in ended and "Traceback" not in ended


@pytest.mark.parametrize("width", [60, 100, 200])
def test_the_state_view_fits_narrow_and_wide_terminals(cli: Runner, width: int) -> None:
    screen = Terminal.open(width, 40)
    try:
        screen.run([cli.executable, "demo", "--rate", "60", "--chargers", "3", "--seed", "4",
                    "--view", "state"])
        shown = screen.wait_for(lambda s: s.count("  link") == 3 and s.count("  power") == 3)
        screen.press("C-c")
    finally:
        screen.close()
    lines = [line.rstrip() for line in shown.splitlines() if line.strip()]
    body = lines[3:]  # under the three header lines
    for line in body:  # every line a charger's first line or one of its group lines
        assert line.split()[0] in {"EHBSTNLV", "ECRVG38K", "EHUDQZTM", "status", "power",
                                   "link", "other"}, f"a wrapped line at {width}:\n{shown}"
        assert len(line) <= width
    assert all(len(line) <= width for line in lines)


def test_replay_shows_a_capture_in_the_state_view(cli: Runner, tmp_path: Path) -> None:
    capture = tmp_path / "fleet.jsonl"
    demo = subprocess.run([cli.executable, "demo", "--rate", "2000", "--count", "300",
                           "--chargers", "2", "--seed", "9", "--jsonl"],
                          capture_output=True, env=clean_env(), timeout=60, check=True)
    capture.write_bytes(demo.stdout)
    last_mode = {}
    for line in demo.stdout.decode().splitlines():
        record = json.loads(line)
        if record.get("name") == "ChargerOpMode":
            last_mode[record["charger"]] = record["label"]
    screen = Terminal.open(140, 40)
    try:
        screen.run([cli.executable, "replay", str(capture), "--view", "state"])
        shown = screen.wait_for(lambda s: "EXIT=" in s)
    finally:
        screen.close()
    assert "EXIT=0" in shown
    assert "300 messages" in shown
    for serial, label in last_mode.items():  # the final state is the capture's last values
        assert re.search(rf"op {re.escape(label)}\b", block(shown, serial))


def test_a_table_started_in_the_background_is_not_stopped(cli: Runner) -> None:
    """`easee-tail demo &` in an interactive shell: the terminal is not its to change (doing
    so would stop it with SIGTTOU); it runs to its end."""
    screen = Terminal.open(100, 30)
    try:
        screen.press(f"clear; NO_COLOR=1 {cli.executable} demo --duration 2 --rate 20 & "
                     "wait $!; echo EX\"\"IT=$?", "Enter")
        ended = screen.wait_for(lambda s: "EXIT=" in s or "Stopped" in s, timeout=20)
    finally:
        screen.close()
    assert "EXIT=0" in ended and "Stopped" not in ended


def test_a_simulated_fleet_from_the_broker_ends_in_its_latest_values(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    published = cli.run("simulate", "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                        "--ca-file", str(cli.certs.ca_file), "--chargers", "3", "--rate",
                        "2000", "--count", "600", "--seed", "21")
    assert published.returncode == 0, published.stderr
    save = tmp_path / "fleet.jsonl"
    screen = Terminal.open(160, 40)
    try:
        screen.run([cli.executable, "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                    "--ca-file", str(cli.certs.ca_file), "--view", "state", "--count", "600",
                    "--save", str(save)])
        shown = screen.wait_for(lambda s: "EXIT=" in s)
    finally:
        screen.close()
    assert "EXIT=0" in shown
    latest: dict[str, dict[str, Any]] = {}
    for line in save.read_text().splitlines():
        record = json.loads(line)
        latest.setdefault(record["charger"], {})[record["name"]] = record
    assert len(latest) == 3
    for serial, values in latest.items():
        charger = block(shown, serial)
        assert f"op {values['ChargerOpMode']['label']}" in charger
        if "TotalPower" in values:
            power = values["TotalPower"]["value"]
            shown_power = f"{power:.3f}".rstrip("0").rstrip(".")
            assert f"P {shown_power} kW" in charger


def test_the_state_view_scrolls_a_charger_at_a_time(cli: Runner) -> None:
    demo = subprocess.run([cli.executable, "demo", "--chargers", "5", "--seed", "4", "--rate",
                           "5000", "--count", "500", "--jsonl"], capture_output=True, text=True,
                          env=clean_env(), timeout=60, check=True)
    serials = sorted({json.loads(line)["charger"] for line in demo.stdout.splitlines()})
    assert len(serials) == 5

    def first_charger(screen: str) -> str:
        return next(line.split()[0] for line in screen.splitlines()[3:]
                    if line[:2] in ("EH", "EC"))

    screen = Terminal.open(100, 16)  # room for two blocks at most
    try:
        screen.run([cli.executable, "demo", "--chargers", "5", "--seed", "4", "--rate", "200",
                    "--view", "state"])
        top = screen.wait_for(lambda s: "more chargers below" in s and "j/k: scroll" in s)
        assert first_charger(top) == serials[0] and "above" not in top
        screen.press("j", "j")
        down = screen.wait_for(lambda s: "↑ 2 chargers above" in s)
        assert first_charger(down) == serials[2]
        screen.press("Down")
        last = screen.wait_for(lambda s: "↑ 3 chargers above" in s
                               and first_charger(s) == serials[3])
        assert "below" not in last and serials[4] in last  # the last charger is on screen
        screen.press("j", "j", "k")  # so j stops: k then goes back to the second
        screen.wait_for(lambda s: "↑ 2 chargers above" in s and first_charger(s) == serials[2])
        screen.press("k", "Up", "Up", "Up", "Up")  # not above the first
        back = screen.wait_for(lambda s: "above" not in s and first_charger(s) == serials[0])
        assert "more chargers below" in back
        screen.press("C-c")
        screen.wait_for(lambda s: "EXIT=130" in s)
    finally:
        screen.close()


def test_a_short_terminal_keeps_a_chargers_status_before_its_other_values(
    cli: Runner,
) -> None:
    # three header lines, then room for five (the live display keeps the last two rows): a
    # block of five lines and the "below" line cannot both fit, so the block's last lines
    # give way, "other" first, status kept
    screen = Terminal.open(100, 10)
    try:
        screen.run([cli.executable, "demo", "--chargers", "3", "--seed", "4", "--rate", "200",
                    "--view", "state"])
        shown = screen.wait_for(lambda s: "  status" in s and "  power" in s and "  link" in s
                                and "2 more chargers below" in s)
        assert "  other" not in shown
        body = [line for line in shown.splitlines()[3:] if line.strip()]
        assert [line.split()[0] for line in body[:4]] == ["ECRVG38K", "status", "power", "link"]
        screen.press("j")  # the next charger gets the same room
        moved = screen.wait_for(lambda s: "↑ 1 charger above" in s and "  status" in s)
        assert moved.splitlines()[4].startswith("EHBSTNLV") and "1 more charger below" in moved
        screen.press("C-c")
        screen.wait_for(lambda s: "EXIT=130" in s)
    finally:
        screen.close()


def test_the_header_counts_down_what_is_left_of_the_backlog(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    """Part way through a backlog, the header says how much of it is still to come: the
    table stopped by --count after 5 of 12 leaves its last frame on the screen."""
    queue.publish_many([("EHBACKLG.O.120", observation(1.0 + n), None) for n in range(12)])
    screen = Terminal.open(160, 30)
    try:
        screen.run([cli.executable, "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                    "--ca-file", str(cli.certs.ca_file), "--count", "5", "--prefetch", "1"])
        shown = screen.wait_for(lambda s: "EXIT=0" in s)
        assert "5 messages" in shown and "backlog 7 of 12 left" in shown
    finally:
        screen.close()
    assert queue.depth() == 7  # what the header said is left is still in the queue


def test_the_header_names_the_view_and_counts_the_backlog_down(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    """The header names the view shown and the key beside it, and says how much of what was
    waiting at start is left, until all of it was read."""
    queue.publish_many([("EHBACKLG.O.120", observation(1.0 + n), None) for n in range(12)])
    screen = Terminal.open(160, 30)
    try:
        screen.run([cli.executable, "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                    "--ca-file", str(cli.certs.ca_file)])
        shown = screen.wait_for(lambda s: "12 messages" in s and "backlog of 12 read" in s)
        assert re.search(r"^easee-tail · stream view · v: next · ", shown, re.M)
        queue.publish("EHBACKLG.O.120", observation(99.0))  # after the backlog: not in it
        shown = screen.wait_for(lambda s: "13 messages" in s)
        assert "backlog of 12 read" in shown
        screen.press("v")
        shown = screen.wait_for(lambda s: "state view · v: next, j/k: scroll" in s)
        assert "EHBACKLG" in shown
        screen.press("C-c")
        screen.wait_for(lambda s: "EXIT=130" in s)
    finally:
        screen.close()
