"""What a crash or a second Ctrl-C leaves behind is usable: the terminal's modes, a --save
file whose last line was cut, a capture with lines of the wrong shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import BrokerQueue, Runner
from tests.harness.proxy import TcpProxy
from tests.harness.rabbit import PASSWORD, USER, RabbitBroker
from tests.harness.terminal import Terminal


def test_a_second_ctrl_c_during_shutdown_still_gives_the_terminal_back(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, terminal: Callable[..., Terminal]
) -> None:
    """The broker stops answering (a silenced path), so closing the connection hangs; the
    user presses Ctrl-C again. The table and the keys have given the terminal back first."""
    proxy = TcpProxy(rabbit.amqps_port)
    try:
        queue.publish("EHCTRLCC.O.120", '{"Timestamp": "2026-11-26T10:00:00Z", "Value": 1.5}')
        url = f"amqps://{USER}:{PASSWORD}@localhost:{proxy.port}/"
        screen = terminal([cli.executable, "--amqp-url", url, "--queue", queue.name,
                           "--ca-file", str(cli.certs.ca_file), "--view", "state"])
        screen.wait_for(lambda text: "EHCTRLCC" in text)
        assert screen.cursor_visible() is False  # the live table hides it
        proxy.silence()
        screen.press("C-c")
        # the sign that shutdown has begun: the cursor is back, the connection still closing
        screen.wait_until(screen.cursor_visible, "the cursor to come back")
        screen.press("C-c")
        ended = screen.wait_for(lambda text: "EXIT=" in text, timeout=30)
    finally:
        proxy.close()
    assert "EXIT=130" in ended and "Traceback" not in ended
    screen.press("clear; stty -a | grep -o -- '-\\?echo\\b\\|-\\?icanon' | tr '\\n' ' '; "
                 "echo MO''DES", "Enter")
    modes = screen.wait_for(lambda text: "MODES" in text)
    assert "-echo " not in modes and "-icanon" not in modes and "icanon" in modes
    assert screen.cursor_visible()


def test_a_save_file_with_a_cut_last_line_gets_its_newline(cli: Runner, tmp_path: Path) -> None:
    save = tmp_path / "capture.jsonl"
    save.write_bytes(b'{"kind": "observation", "charger": "EHCUT')  # a crash mid-line
    result = cli.run("demo", "--count", "3", "--rate", "1000", "--save", str(save), "--jsonl")
    assert result.returncode == 0, result.stderr
    lines = save.read_text().splitlines()
    assert lines[0] == '{"kind": "observation", "charger": "EHCUT'
    assert [json.loads(line)["kind"] for line in lines[1:]] == ["observation"] * 3


def test_replay_skips_lines_whose_fields_have_the_wrong_types(
    cli: Runner, tmp_path: Path
) -> None:
    capture = tmp_path / "capture.jsonl"
    result = cli.run("demo", "--count", "4", "--rate", "1000", "--save", str(capture), "--jsonl")
    assert result.returncode == 0, result.stderr
    good = [json.loads(line) for line in capture.read_text().splitlines()]
    bad_charger = {**good[1], "charger": 12345}
    bad_latency = {**good[2], "latency_ms": "slow"}
    bad_notes = {**good[3], "notes": [{"a": 1}]}
    capture.write_text("\n".join(json.dumps(line) for line in
                                 [good[0], bad_charger, bad_latency, bad_notes]) + "\n")
    replayed = cli.run("replay", str(capture), "--jsonl")
    assert replayed.returncode == 0, replayed.stderr
    assert [json.loads(line)["charger"] for line in replayed.stdout.splitlines()] \
        == [good[0]["charger"]]
    assert f"{capture}:2: skipped: field 'charger' holds int, not str" in replayed.stderr
    assert f"{capture}:3: skipped: field 'latency_ms' holds str, not int or float" \
        in replayed.stderr
    assert f"{capture}:4: skipped: field 'notes' holds something other than text" \
        in replayed.stderr
    assert "internal error" not in replayed.stderr
