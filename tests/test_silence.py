"""Every way the stream can stop, made visible: the broker cancels the consumer or closes
the channel, the queue is deleted, the reader leaves, a signal comes while a write is held
up. Against the real broker and the installed process; nothing acknowledged is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.conftest import BrokerQueue, Lines, Runner, wait_for_full_pipe
from tests.harness.rabbit import RabbitBroker
from tests.harness.terminal import Terminal

STAMP = "2026-11-26T10:00:00Z"


def body(number: int, padding: int = 0) -> str:
    return json.dumps({"Timestamp": STAMP, "Value": number, "pad": "x" * padding})


def direct(cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, *more: str) -> list[str]:
    return ["--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
            "--ca-file", str(cli.certs.ca_file), *more]


def finish(process: subprocess.Popen[str], timeout: float = 15) -> tuple[int, float]:
    started = time.monotonic()
    code = process.wait(timeout=timeout)
    return code, time.monotonic() - started


@pytest.mark.parametrize("reconnect", [True, False])
def test_a_deleted_queue_ends_the_run_naming_it(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, reconnect: bool
) -> None:
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl",
                                *([] if reconnect else ["--no-reconnect"])))
    queue.wait_for_consumers(1)
    queue.publish("EHDELETE.O.120", body(1))
    assert process.stdout is not None
    assert json.loads(process.stdout.readline())["value"] == 1
    with rabbit.channel() as channel:
        channel.queue_delete(queue.name)
    code, took = finish(process)
    assert process.stderr is not None
    stderr = process.stderr.read()
    print(f"\ndeleted queue noticed, exit after {took:.2f} s")
    assert code == 9, stderr
    assert took < 10
    assert f"the queue {queue.name!r} was deleted" in stderr
    assert stderr.count("error:") == 1 and "Traceback" not in stderr


def test_a_deleted_queue_ends_the_live_table_too(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, terminal: Callable[..., Terminal]
) -> None:
    screen = terminal([cli.executable, *direct(cli, rabbit, queue)])
    screen.wait_for(lambda text: "waiting for messages" in text)
    queue.wait_for_consumers(1)
    with rabbit.channel() as channel:
        channel.queue_delete(queue.name)
    shown = screen.wait_for(lambda text: "EXIT=" in text, timeout=15)
    assert "EXIT=9" in shown and "was deleted" in shown


def test_a_cancelled_consumer_consumes_again_when_the_queue_is_still_there(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl", "--count", "101"))
    assert process.stdout is not None and process.stderr is not None
    stderr = Lines(process.stderr)
    queue.wait_for_consumers(1)
    queue.publish("EHCANCEL.O.120", body(0))
    assert json.loads(process.stdout.readline())["value"] == 0
    rabbit.cancel_consumers(queue.name)
    stderr.wait_for("cancelled the consumer")
    stderr.wait_for("reconnected")
    queue.publish_many([("EHCANCEL.O.120", body(number), None) for number in range(1, 101)])
    values = [json.loads(line)["value"] for line in process.stdout]
    assert process.wait(timeout=15) == 0, stderr.text
    assert values == list(range(1, 101))  # 100 of 100 after the queue's consumer came back


@pytest.mark.parametrize("reconnect", [True, False])
def test_a_channel_closed_by_the_broker_is_named_and_retried(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, reconnect: bool
) -> None:
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl", "--count", "2",
                                *([] if reconnect else ["--no-reconnect"])))
    assert process.stdout is not None and process.stderr is not None
    stderr = Lines(process.stderr)
    queue.wait_for_consumers(1)
    queue.publish("EHCLOSED.O.120", body(1))
    assert json.loads(process.stdout.readline())["value"] == 1
    rabbit.close_consumer_channels(queue.name, 406, "PRECONDITION_FAILED - delivery "
                                                    "acknowledgement on channel 1 timed out")
    stderr.wait_for("the broker closed the channel (406: PRECONDITION_FAILED")
    if not reconnect:
        assert process.wait(timeout=15) == 12
        return
    stderr.wait_for("reconnected")
    queue.publish("EHCLOSED.O.120", body(2))
    assert json.loads(process.stdout.readline())["value"] == 2
    assert process.wait(timeout=15) == 0


def test_a_reader_that_leaves_a_quiet_queue_ends_the_run(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    """`easee-tail --charger X | head -n 1` on a queue where X never speaks: when head goes,
    easee-tail goes, instead of draining the queue with nobody reading."""
    read_end, write_end = os.pipe()
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl", "--charger", "EHSILENT"),
                        stdout=write_end)
    os.close(write_end)
    queue.wait_for_consumers(1)
    os.close(read_end)  # the reader leaves; no message comes
    code, took = finish(process)
    print(f"\nreader gone, exit after {took:.2f} s")
    assert code == 0 and took < 5
    queue.publish_many([("EHOTHER1.O.120", body(number), None) for number in range(50)])
    assert queue.depth() == 50  # nothing consumed after the reader left


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_a_held_up_write_loses_nothing(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, signum: int
) -> None:
    total = 3000
    queue.publish_many([("EHSLOW001.O.120", body(number, padding=120), None)
                        for number in range(total)])
    read_end, write_end = os.pipe()
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl"), stdout=write_end)
    os.close(write_end)
    wait_for_full_pipe(read_end)  # the sign: easee-tail is held at its write
    process.send_signal(signum)
    code, _took = finish(process)
    assert process.stderr is not None
    stderr = process.stderr.read()
    out = b""
    while chunk := os.read(read_end, 1 << 16):
        out += chunk
    os.close(read_end)
    assert code == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert out.endswith(b"\n")  # every line whole
    read = [json.loads(line)["value"] for line in out.splitlines()]
    left = [json.loads(item)["Value"] for item in queue.drain()]
    acked = set(range(total)) - set(left)
    assert acked <= set(read), f"acked, never written: {sorted(acked - set(read))[:10]}"
    assert set(read) | set(left) == set(range(total))
    print(f"\n{len(read)} lines read, {len(left)} left in the queue, {len(acked)} acked")




def test_exit_at_end_shows_what_was_waiting_then_exits(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    queue.publish_many([("EHBACKLG.O.120", body(number), None) for number in range(30)])
    result = cli.run(*direct(cli, rabbit, queue, "-e", "--jsonl"))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["value"] for line in result.stdout.splitlines()] == list(range(30))
    assert queue.depth() == 0
    empty = cli.run(*direct(cli, rabbit, queue, "--exit-at-end", "--jsonl"))
    assert empty.returncode == 0 and empty.stdout == ""  # nothing waiting: at once


def test_idle_timeout_ends_a_quiet_stream(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    queue.publish("EHIDLE01.O.120", body(1))
    started = time.monotonic()
    result = cli.run(*direct(cli, rabbit, queue, "--idle-timeout", "1500ms", "--jsonl"))
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["value"] == 1
    assert 1.5 <= took < 30


def test_exit_at_end_is_refused_for_the_demo(cli: Runner) -> None:
    result = cli.run("demo", "-e")
    assert result.returncode == 2 and "--exit-at-end needs a queue" in result.stderr


def test_quiet_leaves_out_information_never_warnings(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    queue.publish_many([("EHQUIET1.O.120", body(number), None) for number in range(2)])
    told = cli.run(*direct(cli, rabbit, queue, "--jsonl", "--count", "1"))
    assert "messages are waiting" in told.stderr
    quiet = cli.run(*direct(cli, rabbit, queue, "-q", "--insecure", "--jsonl", "--count", "1"))
    assert quiet.returncode == 0, quiet.stderr
    assert "waiting" not in quiet.stderr
    assert "warning: --insecure" in quiet.stderr  # a warning is never silenced


@pytest.mark.parametrize(("color", "coloured"), [("always", True), ("never", False),
                                                 ("auto", False)])
def test_color_always_colours_even_a_pipe(cli: Runner, color: str, coloured: bool) -> None:
    result = cli.run("--amqp-url", "amqps://localhost:1/", "--queue", "q", "--color", color)
    assert result.returncode == 5
    assert ("\x1b[31m" in result.stderr) is coloured
