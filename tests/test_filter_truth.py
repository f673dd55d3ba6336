"""Filters tell the truth: what they removed is counted and said, never consumed in silence."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from pytest_httpserver import HTTPServer

from easee_tail.filters import could_be_serial
from tests.conftest import TOKEN, BrokerQueue, Lines, Runner, api_args, clean_env
from tests.harness.terminal import Terminal

BODY = '{"Timestamp": "2026-11-26T10:00:00Z", "Value": 3}'


def test_a_filter_that_matches_nothing_is_said_and_counted_on_a_pipe(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    queue.publish_many([(f"EHOTHER{n % 3}.O.109", BODY, None) for n in range(30)])
    process = cli.popen("--token", TOKEN, *api_args(api, cli.certs), "--jsonl",
                        "--charger", "EH8KWDB8", "--stats-interval", "1")
    assert process.stderr is not None and process.stdout is not None
    stderr = Lines(process.stderr)
    try:
        start = stderr.wait_for("filters on")
        assert "filters on (charger EH8KWDB8): messages that do not match are acknowledged, " \
               "so they leave the queue unseen" in start
        said = stderr.wait_for("none matched the filters", timeout=30)
        assert "30 received, none matched the filters (charger EH8KWDB8); the 30 that did " \
               "not match were acknowledged" in said
        stats = json.loads(stderr.wait_for('"filtered":30'))
        assert stats["messages"] == 0 and stats["received"] == 30
        assert queue.depth() == 0  # consumed: that is why it is said
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert process.stdout.read() == ""


def test_peek_and_an_unfiltered_run_say_nothing_of_filters(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    # (--peek sees the head of the queue again and again while nobody else takes it)
    queue.publish_many([("EH8KWDB8.O.109", BODY, None), ("EHOTHER1.O.109", BODY, None)])
    peeked = cli.run("--token", TOKEN, *api_args(api, cli.certs), "--peek", "--jsonl",
                     "-s", "EH8KWDB8", "-c", "1")
    assert peeked.returncode == 0, peeked.stderr
    assert "filters on" not in peeked.stderr and json.loads(peeked.stdout)["charger"] == "EH8KWDB8"
    plain = cli.run("--token", TOKEN, *api_args(api, cli.certs), "--jsonl", "-c", "2")
    assert plain.returncode == 0 and "filter" not in plain.stderr


def test_the_table_and_the_summary_count_received_shown_and_filtered(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, terminal: Callable[..., Terminal]
) -> None:
    queue.publish_many([("EHOTHER1.O.109", BODY, None)] * 4 + [("EH8KWDB8.O.109", BODY, None)])
    screen = terminal([cli.executable, "--token", TOKEN, *api_args(api, cli.certs),
                       "-s", "EH8KWDB8"], height=40)
    shown = screen.wait_for(lambda s: "1 message shown of 5 received" in s)
    assert "4 filtered out (acknowledged)" in shown and "filter charger EH8KWDB8" in shown
    assert "EHOTHER1" not in shown.split("per charger")[1]  # counted, never shown
    screen.press("C-c")
    ended = screen.wait_for(lambda s: "EXIT=" in s)
    assert "easee-tail: 1 message shown in" in ended
    assert "filtered:        4 of 5 messages received did not match (charger EH8KWDB8) and " \
           "were acknowledged" in ended


def test_replay_skips_rather_than_acknowledges(cli: Runner, tmp_path: Path) -> None:
    capture = tmp_path / "fleet.jsonl"
    made = cli.run("demo", "-c", "200", "--rate", "5000", "--seed", "3", "-w", str(capture),
                   "-j")
    assert made.returncode == 0, made.stderr
    result = cli.run("replay", str(capture), "-j", "--obs", "ChargerOpMode")
    assert result.returncode == 0, result.stderr
    kept = len(result.stdout.splitlines())
    assert 0 < kept < 200 and "filter" not in result.stderr  # no queue to leave
    nothing = cli.run("replay", str(capture), "-j", "-s", "EHNOSUCH")
    assert nothing.returncode == 0 and nothing.stdout == ""
    # a run that ends before the first notice says it at the end
    assert "200 received, none matched the filters (charger EHNOSUCH); the 200 that did " \
           "not match were skipped" in nothing.stderr


def test_a_value_that_cannot_be_a_serial_is_a_warning(cli: Runner) -> None:
    for value, warned in (("EH-1234", True), ("NOSUCH", True), ("EH8KWDB8", False),
                          ("eh*", False), ("E?123456", False), ("EH1234567", True)):
        assert could_be_serial(value) is not warned, value
    result = cli.run("demo", "-j", "-s", "EH-1234", "--duration", "1")
    assert result.returncode == 0 and result.stdout == ""
    assert "--charger 'EH-1234' cannot be an Easee serial" in result.stderr


def test_a_profiles_charger_filter_does_not_hide_the_demo(
    cli: Runner, tmp_path: Path
) -> None:
    config = tmp_path / "config" / "easee-tail"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(
        '[profile.depot]\ncharger = ["EH8KWDB8"]\nobs = ["ChargerOpMode"]\n')
    env = clean_env(XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = cli.run("demo", "--profile", "depot", "-j", "-c", "3", "--rate", "200", env=env)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3 and {record["name"] for record in records} == {"ChargerOpMode"}
    assert "the profile's charger filter does not apply to the demo" in result.stderr
    typed = cli.run("demo", "--profile", "depot", "-j", "-s", "NOSUCH", "--duration", "1",
                    env=env)
    assert typed.stdout == "" and "cannot be an Easee serial" in typed.stderr
