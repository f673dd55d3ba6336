"""What a person sees: the live table in a real terminal (tmux), Ctrl-C, the exit summary."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import (
    LOGIN_PASSWORD,
    TOKEN,
    BrokerQueue,
    Runner,
    api_args,
    clean_env,
    stream_details,
)
from tests.harness.rabbit import RabbitBroker
from tests.harness.terminal import Terminal

WIDTH, HEIGHT = 120, 30


def test_live_table_shows_observations_and_ctrl_c_prints_the_summary(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, tmp_path: Path,
    terminal: Callable[..., Terminal],
) -> None:
    save = tmp_path / "table.jsonl"
    queue.publish("EHTABLE1.O.109", '{"Timestamp": "2026-11-24T12:00:00Z", "Value": 3}',
                  {"ArrivalTime": "2026-11-24T12:00:00Z"})
    queue.publish("EHTABLE1.O.120", '{"Value": 11.04}')
    queue.publish("EHTABLE1.O.120", "garbage")
    screen = terminal([cli.executable, "--token", TOKEN, *api_args(api, cli.certs),
                       "--save", str(save)])
    shown = screen.wait_for(lambda s: "unreadable" in s and "11.04 kW" in s)
    assert f"queue {queue.name}" in shown
    assert "3 messages" in shown
    assert "3 Charging" in shown
    assert "ChargerOpMode" in shown and "EHTABLE1" in shown
    assert "error" in shown and "garbage" in shown
    # Arrival times from 2026-11-24 are far in the past: a latency in minutes, shown.
    assert "min" in shown
    queue.publish("EHTABLE1.O.109", '{"Value": 4}')
    screen.wait_for(lambda s: "4 Completed" in s)
    screen.press("C-c")
    ended = screen.wait_for(lambda s: "EXIT=" in s, timeout=10)
    assert "EXIT=130" in ended
    assert "easee-tail: 4 messages" in ended and "per charger:     EHTABLE1 4" in ended
    assert "per observation: ChargerOpMode 2, TotalPower 1, (unreadable) 1" in ended
    assert "Traceback" not in ended
    saved = [json.loads(line) for line in save.read_text().splitlines()]
    assert [record["kind"] for record in saved] == ["observation", "observation", "error",
                                                    "observation"]
    assert queue.depth() == 0


def test_demo_runs_in_a_terminal_without_any_account(
    cli: Runner, terminal: Callable[..., Terminal]
) -> None:
    # tall enough for the whole exit summary, however wide the latencies spread under load
    screen = terminal([cli.executable, "demo", "--rate", "40", "--duration", "3"], height=50)
    shown = screen.wait_for(lambda s: "messages" in s and "ChargerOpMode" in s)
    assert "demo: simulated fleet" in shown and "latency p50" in shown
    ended = screen.wait_for(lambda s: "EXIT=" in s, timeout=15)
    assert "EXIT=0" in ended
    # the exit summary: totals, then a bar per latency bucket with its count and share
    summary = ended[ended.index("easee-tail: "):]
    # the busiest first: which observation that is depends on the run's timing
    assert "per charger:" in summary and "per observation: " in summary
    bars = re.findall(r"^ +(.+?) │(█*) +([\d,]+) +([\d.]+)%$", ended, re.M)
    assert len(bars) >= 2 and any(bar for _name, bar, _count, _share in bars)
    total = int(re.search(r"easee-tail: (\d+) messages in", ended)[1])  # type: ignore[index]
    assert sum(int(count.replace(",", "")) for _name, _bar, count, _share in bars) == total


def test_login_password_is_prompted_for_without_echo(
    cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
    terminal: Callable[..., Terminal],
) -> None:
    httpserver.expect_request(
        "/api/accounts/login", method="POST",
        json={"userName": "partner@example.com", "password": LOGIN_PASSWORD},
    ).respond_with_json({"accessToken": TOKEN, "expiresIn": 3600})
    httpserver.expect_request(
        "/api/streams/amqp/v2", headers={"Authorization": f"Bearer {TOKEN}"},
    ).respond_with_json(stream_details(rabbit, queue.name))
    queue.publish("EHPROMPT.O.109", '{"Value": 6}')
    screen = terminal([cli.executable, "--username", "partner@example.com",
                       *api_args(httpserver, cli.certs), "--count", "1"])
    screen.wait_for(lambda s: "Easee password for partner@example.com" in s)
    screen.press(LOGIN_PASSWORD, "Enter")
    shown = screen.wait_for(lambda s: "EXIT=" in s)
    assert "EXIT=0" in shown and "6 ReadyToCharge" in shown
    assert LOGIN_PASSWORD not in shown and TOKEN not in shown


def test_the_table_says_it_is_reconnecting_and_marks_redelivered_rows(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue,
    terminal: Callable[..., Terminal],
) -> None:
    queue.publish("EHRECON1.O.109", '{"Timestamp": "2026-11-24T12:00:00Z", "Value": 3}')
    screen = terminal([cli.executable, "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                       "--ca-file", str(cli.certs.ca_file)])
    screen.wait_for(lambda s: "1 message ·" in s and "EHRECON1" in s)
    rabbit.ctl("stop_app")
    try:
        down = screen.wait_for(lambda s: "reconnecting (attempt" in s)
    finally:
        rabbit.ctl("start_app")
    assert "was lost" in down  # the notice above the table says why
    queue.publish("EHRECON1.O.109", '{"Timestamp": "2026-11-24T12:00:01Z", "Value": 2}')
    back = screen.wait_for(lambda s: "reconnected to" in s and "2 messages" in s, timeout=60)
    assert "2 AwaitingStart" in back
    assert "Traceback" not in back
    screen.press("C-c")
    screen.wait_for(lambda s: "EXIT=130" in s)


def test_redelivered_rows_are_marked(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue,
    terminal: Callable[..., Terminal],
) -> None:
    """A message another consumer took and gave back arrives marked redelivered."""
    queue.publish("EHREDEL1.O.109", '{"Timestamp": "2026-11-24T12:00:00Z", "Value": 3}')
    with rabbit.channel() as channel:
        method, _properties, _body = channel.basic_get(queue.name)
        assert method is not None
        channel.basic_nack(method.delivery_tag, requeue=True)
    screen = terminal([cli.executable, "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                       "--ca-file", str(cli.certs.ca_file)])
    shown = screen.wait_for(lambda s: "EHREDEL1" in s)
    assert "↻ EHREDEL1" in shown and "1 redelivered" in shown
    screen.press("C-c")


def test_observations_table_on_a_terminal(
    cli: Runner, terminal: Callable[..., Terminal]
) -> None:
    screen = terminal([cli.executable, "observations"])
    shown = screen.wait_for(lambda s: "EXIT=0" in s)
    assert "│" in shown and "\t" not in shown  # a drawn table, not the piped lines
    assert "Traceback" not in shown


@pytest.mark.parametrize("width", [60, 100, 200])
def test_the_table_fits_narrow_and_wide_terminals_without_wrapping(
    cli: Runner, width: int, tmp_path: Path
) -> None:
    screen = Terminal.open(width, 20)
    try:
        screen.run([cli.executable, "demo", "--rate", "50", "--chargers", "3", "--seed", "4"])
        shown = screen.wait_for(lambda s: sum(line[:2] in ("EH", "EC") or line[:2].isdigit()
                                              for line in s.splitlines()) >= 12)
    finally:
        screen.close()
    lines = [line.rstrip() for line in shown.splitlines() if line.strip()]
    heading = next(n for n, line in enumerate(lines)
                   if line.lstrip().startswith(("received", "charger")))
    rows = lines[heading + 1:]
    assert len(rows) >= 10
    chargers = {"EHBSTNLV", "ECRVG38K", "EHUDQZTM"}  # this seed's fleet
    for row in rows:  # one line per record, each starting with its time or its charger
        first = row.split()[0]
        assert first in chargers or first[:2].isdigit(), f"a wrapped row at {width}:\n{shown}"
        assert len(row) <= width
    assert ("received" in lines[heading]) == (width >= 100)  # narrow ones drop the time
    assert ("latency" in lines[heading]) == (width >= 80)


def test_rows_already_drawn_take_the_new_columns_when_the_terminal_is_resized(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, terminal: Callable[..., Terminal],
) -> None:
    # a row's line is made once and kept: a narrower window must still redraw it narrower
    for number in range(4):
        queue.publish("EHRESIZE.O.120", f'{{"Value": {number + 1}.5}}',
                      {"ArrivalTime": "2026-11-24T12:00:00Z"})
    screen = terminal([cli.executable, "--token", TOKEN, *api_args(api, cli.certs)])
    wide = screen.wait_for(lambda s: "4 messages" in s and "4.5 kW" in s)
    rows = [line for line in wide.splitlines() if "EHRESIZE" in line and "TotalPower" in line]
    assert len(rows) == 4 and all(row[:2].isdigit() for row in rows)  # the time first
    screen.resize(70, 30)
    narrow = screen.wait_for(lambda s: any(line.lstrip().startswith("charger")
                                           for line in s.splitlines()))
    # what the old frame left above the new one (tmux rewraps it) is not looked at
    lines = narrow.splitlines()
    heading = max(number for number, line in enumerate(lines)
                  if line.lstrip().startswith("charger"))
    rows = [line.rstrip() for line in lines[heading + 1:]
            if "EHRESIZE" in line and "TotalPower" in line]
    # the same four records, drawn again without the time and id that no longer fit
    assert [row.split()[0] for row in rows] == ["EHRESIZE"] * 4, narrow
    assert [row.split()[2:4] for row in rows] == [["1.5", "kW"], ["2.5", "kW"],
                                                  ["3.5", "kW"], ["4.5", "kW"]]
    assert all(len(row) <= 70 for row in rows)
    screen.press("C-c")
    assert "EXIT=130" in screen.wait_for(lambda s: "EXIT=" in s, timeout=10)


def test_colours_unless_no_color(cli: Runner) -> None:
    import os
    import pty

    def run(*extra: str) -> bytes:
        controller, child = pty.openpty()
        env = {k: v for k, v in clean_env().items() if k != "NO_COLOR"}
        env["TERM"] = "xterm-256color"
        process = subprocess.Popen([cli.executable, "demo", "--count", "30", "--rate", "300",
                                    *extra], stdin=child, stdout=child, stderr=child, env=env)
        os.close(child)
        output = b""
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:
                break
            if not data:
                break
            output += data
        process.wait(timeout=30)
        os.close(controller)
        return output

    assert b"\x1b[3" in run() or b"\x1b[1;3" in run()  # foreground colours
    plain = run("--no-color")
    assert b"ChargerOpMode" in plain or b"messages" in plain
    assert b"\x1b[31m" not in plain and b"\x1b[32m" not in plain and b"\x1b[33m" not in plain
