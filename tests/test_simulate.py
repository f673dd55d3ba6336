"""`easee-tail simulate` publishes a realistic fleet to a real broker; easee-tail reads it back."""

from __future__ import annotations

import itertools
import json
import re
import signal
import time
from collections import defaultdict
from typing import Any

from tests.conftest import BrokerQueue, Lines, Runner
from tests.harness.rabbit import PASSWORD, RabbitBroker

OPMODE_NEXT = {  # what the simulated charger may do next, besides rebooting (back to 1)
    1: {2, 1}, 2: {7, 3, 1}, 7: {3, 8, 1}, 8: {2}, 3: {4, 5, 2, 1}, 4: {1}, 5: {1}, 6: {1},
}


def consume(cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, count: int) -> list[dict[str, Any]]:
    result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                     "--ca-file", str(cli.certs.ca_file), "--jsonl", "--count", str(count))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_simulated_fleet_into_a_queue_reads_back_consistently(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    published = cli.run("simulate", "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                        "--ca-file", str(cli.certs.ca_file), "--chargers", "3", "--rate",
                        "3000", "--count", "3000", "--seed", "11", "--delay-ms", "100", "200",
                        "--time-scale", "20000")  # hours of the fleet: sessions
    assert published.returncode == 0, published.stderr
    assert "3,000 messages from 3 chargers published" in published.stderr
    assert PASSWORD not in published.stderr
    records = consume(cli, rabbit, queue, 3000)
    assert queue.depth() == 0
    assert len({record["charger"] for record in records}) == 3
    assert all(record["routing_key"] == f"{record['charger']}.O.{record['id']}"
               for record in records)
    assert all(record["kind"] == "observation" and record["name"] != "Unknown"
               for record in records)
    # ArrivalTime comes 60-95 % of the configured delay after the charger's timestamp
    for record in records:
        arrival, stamp = record["arrival"], record["timestamp"]
        assert arrival > stamp
    # op modes follow the charger's life; sessions add up
    modes: dict[str, list[int]] = defaultdict(list)
    for record in records:
        if record["id"] == 109:
            modes[record["charger"]].append(record["value"])
    for sequence in modes.values():
        for before, after in itertools.pairwise(sequence):
            assert after in OPMODE_NEXT[before] | {1}, sequence
    sessions = [record["value"] for record in records if record["id"] == 129]
    assert sessions
    for session in sessions:
        metered = session["MeterValueStop"] - session["MeterValueStart"]
        assert abs(metered - session["EnergyKwh"]) < 0.01
    tokens = {record["value"] for record in records if record["id"] == 128}
    reversed_tokens = {record["value"] for record in records if record["id"] == 108}
    assert tokens and reversed_tokens <= tokens  # 108 is shown reversed back: the same token


def test_simulate_to_an_exchange_and_its_errors(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    published = cli.run("simulate", "--amqp-url", rabbit.amqps_url(), "--exchange",
                        queue.exchange, "--ca-file", str(cli.certs.ca_file), "--count", "25",
                        "--rate", "500")
    assert published.returncode == 0, published.stderr
    assert len(consume(cli, rabbit, queue, 25)) == 25
    neither = cli.run("simulate", "--amqp-url", rabbit.amqps_url())
    assert neither.returncode == 2 and "give --queue or --exchange" in neither.stderr
    missing = cli.run("simulate", "--amqp-url", rabbit.amqps_url(), "--queue", "absent.Q",
                      "--ca-file", str(cli.certs.ca_file), "--count", "1")
    assert missing.returncode == 9 and "absent.Q" in missing.stderr
    assert PASSWORD not in missing.stderr


def test_a_broker_in_disk_alarm_is_explained_while_simulate_waits(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    """A disk alarm blocks publishers (connection.blocked): simulate says so within seconds
    instead of waiting five minutes in silence, and carries on when the alarm clears."""
    process = cli.popen("simulate", "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                        "--ca-file", str(cli.certs.ca_file), "--rate", "100")
    assert process.stderr is not None
    stderr = Lines(process.stderr)
    try:
        deadline = time.monotonic() + 30
        while queue.depth() < 10:  # the sign: it is publishing
            assert time.monotonic() < deadline
            time.sleep(0.1)
        limit = rabbit.ctl("eval", "rabbit_disk_monitor:get_disk_free_limit().").strip()
        rabbit.ctl("set_disk_free_limit", "100000GB")  # more than any disk: the alarm goes off
        try:
            stderr.wait_for("the broker is blocking publishers", timeout=60)
        finally:
            rabbit.ctl("set_disk_free_limit", limit)
        stderr.wait_for("publishing resumed after", timeout=60)
        depth = queue.depth()
        while queue.depth() <= depth:  # publishing again
            assert time.monotonic() < deadline + 120
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 130, stderr.text
    assert "Traceback" not in stderr.text


def test_simulate_reconnects_when_its_connection_is_lost(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    # 20 s of publishing: rabbitmqctl takes seconds on a loaded machine, and the connection
    # must be closed while simulate is still at it
    process = cli.popen("simulate", "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                        "--ca-file", str(cli.certs.ca_file), "--chargers", "3", "--rate", "200",
                        "--count", "4000", "--seed", "5")
    assert process.stderr is not None
    stderr = Lines(process.stderr)
    deadline = time.monotonic() + 60
    while queue.depth() < 200:  # the sign: it is publishing
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    rabbit.ctl("close_all_connections", "test: a broker restart")
    said = stderr.wait_for("reconnecting in", timeout=30)
    assert re.search(r"connection lost after [\d,]+ messages \(.+\); reconnecting in "
                     r"[\d.]+ s \(attempt 1\)", said), said
    assert process.wait(timeout=90) == 0, stderr.text
    assert "4,000 messages from 3 chargers published" in stderr.text
    records = consume(cli, rabbit, queue, queue.depth())
    seen = {(record["routing_key"], record["timestamp"]) for record in records}
    assert len(seen) == 4000 and len(records) >= 4000  # none skipped; at least once
