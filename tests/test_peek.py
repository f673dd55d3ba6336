"""--peek next to a "production" consumer on the same queue: what does it cost that consumer?

Measured for real at 10, 100 and 1000 msg/s: messages the production consumer never gets
(must be 0), gets twice, or gets late (later than it would without --peek), and how many
--peek showed. The figures are printed (pytest -s) and go into README.md; the test asserts
only what must hold: nothing lost, nothing twice, every message shown at most once.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from tests.conftest import BrokerQueue, Runner
from tests.harness.rabbit import RabbitBroker
from tests.test_reliability import queue_consumers, wait_for


@dataclass
class Production:
    """A consumer as a partner's service would be: prefetch 50, ack each message."""

    received: dict[int, list[float]]  # message number -> when it arrived (each time)
    redelivered: int = 0


def run_production(rabbit: RabbitBroker, queue: BrokerQueue, stop: threading.Event,
                   production: Production) -> None:
    connection = rabbit.plain_connection()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=50)

    def on_message(channel: pika.adapters.blocking_connection.BlockingChannel,
                   method: pika.spec.Basic.Deliver, _properties: pika.BasicProperties,
                   body: bytes) -> None:
        number = int(json.loads(body)["Value"])
        production.received.setdefault(number, []).append(time.time())
        production.redelivered += method.redelivered
        channel.basic_ack(method.delivery_tag)

    channel.basic_consume(queue.name, on_message)
    while not stop.is_set():
        connection.process_data_events(time_limit=0.05)
    connection.close()


def publish_at(queue: BrokerQueue, rate: float, count: int) -> dict[int, float]:
    sent: dict[int, float] = {}
    with queue.broker.channel() as channel:
        began = time.perf_counter()
        for number in range(count):
            pause = began + number / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sent[number] = time.time()
            channel.basic_publish(queue.exchange, "EHPEEK01.O.120", json.dumps(
                {"Timestamp": "2026-11-24T12:00:00Z", "Value": float(number)}),
                pika.BasicProperties(delivery_mode=2))
    return sent


def measure(rabbit: RabbitBroker, queue: BrokerQueue, rate: float, count: int,
            peek: subprocess.Popen[str] | None) -> tuple[Production, dict[int, float]]:
    production = Production({})
    stop = threading.Event()
    thread = threading.Thread(target=run_production, args=(rabbit, queue, stop, production))
    thread.start()
    wait_for(lambda: queue_consumers(rabbit, queue) == (2 if peek else 1), "the consumers")
    sent = publish_at(queue, rate, count)
    wait_for(lambda: len(production.received) == count, "production to get everything", 60)
    time.sleep(0.5)  # anything arriving twice would come now
    stop.set()
    thread.join()
    return production, sent


def delays(production: Production, sent: dict[int, float]) -> list[float]:
    return sorted((times[0] - sent[number]) * 1000 for number, times in production.received.items())


@pytest.mark.parametrize("rate,count", [(10, 40), (100, 300), (1000, 2000)])
def test_peek_next_to_a_production_consumer(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path, rate: int, count: int
) -> None:
    alone, alone_sent = measure(rabbit, queue, rate, count, None)
    alone_delays = delays(alone, alone_sent)

    save = tmp_path / "peek.jsonl"
    peek = cli.popen("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                     "--ca-file", str(cli.certs.ca_file), "--peek", "--jsonl",
                     "--save", str(save), stdout=subprocess.DEVNULL)
    try:
        production, sent = measure(rabbit, queue, rate, count, peek)
    finally:
        peek.terminate()
        peek.wait(timeout=10)
    assert peek.stderr is not None
    stderr = peek.stderr.read()
    assert "--peek" in stderr  # it says what it costs the other consumer
    shown = [int(json.loads(line)["value"]) for line in save.read_text().splitlines()]
    lost = count - len(production.received)
    twice = sum(len(times) > 1 for times in production.received.values())
    with_peek = delays(production, sent)
    late = sum(1 for value in with_peek if value > alone_delays[int(len(alone_delays) * 0.99)])
    print(f"\npeek at {rate} msg/s, {count} messages: lost {lost}, twice {twice}, "
          f"redelivered {production.redelivered}, later than the p99 without peek "
          f"({alone_delays[int(len(alone_delays) * 0.99)]:.1f} ms): {late}; delay p50/p99/max "
          f"{with_peek[len(with_peek) // 2]:.1f}/{with_peek[int(len(with_peek) * 0.99)]:.1f}/"
          f"{with_peek[-1]:.1f} ms (without: {alone_delays[len(alone_delays) // 2]:.1f}/"
          f"{alone_delays[int(len(alone_delays) * 0.99)]:.1f}/{alone_delays[-1]:.1f}); "
          f"peek showed {len(set(shown))}")
    assert lost == 0
    assert twice == 0
    assert len(shown) == len(set(shown))  # de-duplicated: nothing shown twice
    assert queue.depth() == 0
