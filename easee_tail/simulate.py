"""`easee-tail simulate`: the demo's fleet, published to a real broker, for partners testing
their own consumers (and for our tests and benchmark).

Messages keep their real routing keys (`<serial>.O.<id>`) and ArrivalTime headers. Given an
exchange, they are published to it; given only a queue, a private topic exchange bound to
that queue carries them (the default exchange would replace the routing key with the queue's
name). Publisher confirms: a message counted as sent is in the broker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from easee_tail.errors import BrokerClosed, QueueNotFound
from easee_tail.fleet import Fleet
from easee_tail.source.broker import BLOCKED_TIMEOUT

SIMULATE_EXCHANGE = "easee-tail.simulate"
STALL = 3.0  # seconds a confirmed publish may take before the wait is explained


@dataclass(frozen=True)
class Target:
    queue: str | None
    exchange: str | None


class _StallWatch:
    """Explains a publish that waits: RabbitMQ holds every publishing connection while it is
    in a memory or disk alarm (connection.blocked), and pika's blocking publish waits in
    silence meanwhile (its blocked notice is only handed over after the publish returns).
    A thread of its own watches the clock and says so, and says when publishing resumed."""

    def __init__(self, tell: Callable[[str], None]) -> None:
        self._tell = tell
        self._since: float | None = None
        self._told = False
        self._stop = threading.Event()

    @contextmanager
    def watching(self) -> Iterator[None]:
        thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()

    @contextmanager
    def publishing(self) -> Iterator[None]:
        self._since = time.monotonic()
        try:
            yield
        finally:
            held, self._since = time.monotonic() - self._since, None
            if self._told:
                self._told = False
                self._tell(f"publishing resumed after {held:.0f} s")

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            since = self._since
            if since is not None and not self._told and time.monotonic() - since > STALL:
                self._told = True
                self._tell(
                    f"publishing has been held up for {STALL:.0f} s: the broker is blocking "
                    "publishers (connection.blocked, raised by a memory or disk alarm: see "
                    "`rabbitmqctl status`); waiting up to "
                    f"{BLOCKED_TIMEOUT} s for it to clear")


def publish(
    connection: pika.BlockingConnection, fleet: Fleet, target: Target, rate: float,
    count: int | None, duration: float | None, progress: Callable[[int], None],
    tell: Callable[[str], None] = lambda _text: None,
) -> int:
    """Publish at `rate` until `count` messages or `duration` seconds; the number sent.
    `tell` hears about a stall (a broker in alarm) as it happens."""
    channel = connection.channel()
    exchange = target.exchange or SIMULATE_EXCHANGE
    try:
        if target.queue:
            channel.queue_declare(target.queue, passive=True)
        if target.exchange is None:
            channel.exchange_declare(SIMULATE_EXCHANGE, "topic", auto_delete=True)
            channel.queue_bind(target.queue or "", SIMULATE_EXCHANGE, "#")
        else:
            channel.exchange_declare(target.exchange, passive=True)
    except pika.exceptions.ChannelClosedByBroker as closed:
        raise QueueNotFound(f"cannot publish there: {closed.reply_text}") from None
    channel.confirm_delivery()
    started = time.time()
    deadline = started + duration if duration is not None else None
    sent = 0
    stall = _StallWatch(tell)
    try:
        with stall.watching():
            sent = _publish_all(channel, exchange, fleet, started, rate, count, deadline,
                                progress, stall)
    except _Stopped as stopped:
        lost, sent = stopped.problem, stopped.sent
        raise BrokerClosed(f"publishing stopped after {sent} messages: "
                           f"{str(lost).splitlines()[0][:160] or type(lost).__name__}") from None
    return sent


class _Stopped(Exception):
    def __init__(self, problem: BaseException, sent: int) -> None:
        super().__init__(problem)
        self.problem, self.sent = problem, sent


def _publish_all(
    channel: BlockingChannel, exchange: str, fleet: Fleet, started: float, rate: float,
    count: int | None, deadline: float | None, progress: Callable[[int], None],
    stall: _StallWatch,
) -> int:
    sent = 0
    try:
        for moment, message in fleet.messages(started, rate):
            if (count is not None and sent >= count) or (deadline is not None
                                                         and moment >= deadline):
                break
            pause = moment - time.time()
            if pause > 0:
                time.sleep(pause)
            with stall.publishing():
                channel.basic_publish(
                    exchange, message.routing_key, message.body,
                    pika.BasicProperties(headers=message.headers, delivery_mode=2))
            sent += 1
            if sent % 1000 == 0:
                progress(sent)
    except (pika.exceptions.AMQPError, OSError) as lost:
        raise _Stopped(lost, sent) from None
    return sent
