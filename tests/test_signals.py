"""Signals at every stage: connecting, consuming, in reconnect backoff (a write held up by
the reader is in test_silence.py). Each ends easee-tail promptly, with its documented exit
code and whole lines. Each signal is sent on a sign of the stage, never after a sleep; the
bounds are loose (seconds) so that a loaded machine passes too."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import (
    TOKEN,
    BrokerQueue,
    Runner,
    api_args,
    signal_and_wait,
    stream_details,
)
from tests.harness.rabbit import RabbitBroker
from tests.test_reliability import numbered, queue_consumers, wait_for

EXPECTED: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129, signal.SIGPIPE: 0}


def amqp(rabbit: RabbitBroker, queue: BrokerQueue, cli: Runner) -> list[str]:
    return ["--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
            "--ca-file", str(cli.certs.ca_file)]


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGPIPE])
def test_hangup_and_sigpipe_while_consuming(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path, signum: int
) -> None:
    queue.publish_many(numbered(0, 20_000))
    save = tmp_path / "save.jsonl"
    process = cli.popen(*amqp(rabbit, queue, cli), "--jsonl", "--save", str(save),
                        "--prefetch", "200", stdout=subprocess.DEVNULL)
    wait_for(lambda: save.exists() and save.read_text().count("\n") >= 300, "300 lines")
    code, took, _stderr = signal_and_wait(process, signum)
    assert code == EXPECTED[signum] and took < 5
    saved = save.read_text()
    assert saved.endswith("\n")
    lines = saved.splitlines()
    for line in lines:
        json.loads(line)
    assert 20_000 - queue.depth() <= len(lines)  # nothing acked that was not written


def test_sigterm_while_the_api_has_not_answered_yet(cli: Runner, httpserver: HTTPServer) -> None:
    asked = threading.Event()

    def slow(_request: Request) -> Response:
        asked.set()
        time.sleep(8)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/api/streams/amqp/v2").respond_with_handler(slow)
    process = cli.popen("--token", TOKEN, *api_args(httpserver, cli.certs), "--jsonl")
    assert asked.wait(30)  # the sign: easee-tail is waiting for the API
    code, took, _stderr = signal_and_wait(process, signal.SIGTERM)
    assert code == 143 and took < 5  # not the API's 8 s


def test_sigint_during_reconnect_backoff(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    process = cli.popen(*amqp(rabbit, queue, cli), "--jsonl")
    wait_for(lambda: queue_consumers(rabbit, queue) == 1, "easee-tail to consume")
    rabbit.ctl("stop_app")
    try:
        assert process.stderr is not None
        first = process.stderr.readline() + process.stderr.readline()
        assert "reconnecting (attempt" in first  # the sign: in the backoff
        code, took, _stderr = signal_and_wait(process, signal.SIGINT)
    finally:
        rabbit.ctl("start_app")
    assert code == 130 and took < 5


def test_demo_stopped_by_each_signal(cli: Runner) -> None:
    for signum, code in EXPECTED.items():
        process = cli.popen("demo", "--jsonl", "--rate", "200")
        assert process.stdout is not None
        process.stdout.readline()
        exit_code, took, _stderr = signal_and_wait(process, signum)
        assert (exit_code, took < 5) == (code, True), signum


def test_api_details_then_sigterm_mid_stream(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        stream_details(rabbit, queue.name))
    process = cli.popen("--token", TOKEN, *api_args(httpserver, cli.certs), "--jsonl")
    wait_for(lambda: queue_consumers(rabbit, queue) == 1, "easee-tail to consume")
    code, took, _stderr = signal_and_wait(process, signal.SIGTERM)
    assert code == 143 and took < 5
