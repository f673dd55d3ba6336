"""`easee-tail simulate`: the demo's fleet, published to a real broker, for partners testing
their own consumers (and for our tests and benchmark).

Messages keep their real routing keys (`<serial>.O.<id>`) and ArrivalTime headers. Given an
exchange, they are published to it; given only a queue, a private topic exchange bound to
that queue carries them (the default exchange would replace the routing key with the queue's
name). Publisher confirms: a message counted as sent is in the broker.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from easee_tail.errors import BrokerClosed, EaseeTailError, QueueNotFound
from easee_tail.fleet import Fleet, WireMessage
from easee_tail.source.broker import BLOCKED_TIMEOUT
from easee_tail.source.reconnect import Backoff
from easee_tail.text import plural

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


@dataclass
class _Progress:
    sent: int = 0
    carried: WireMessage | None = None  # taken from the fleet, not confirmed: sent again


def publish(
    connect: Callable[[], pika.BlockingConnection], fleet: Fleet, target: Target, rate: float,
    count: int | None, duration: float | None, progress: Callable[[int], None],
    tell: Callable[[str], None] = lambda _text: None, backoff: Backoff | None = None,
    rng: random.Random | None = None,
) -> int:
    """Publish at `rate` until `count` messages or `duration` seconds; the number sent.
    `tell` hears about a stall (a broker in alarm) as it happens, and about reconnecting.
    With `backoff`, a lost connection is opened again (as the tail does) and the message
    whose publish was not confirmed is sent again: at least once, none skipped."""
    started = time.time()
    deadline = started + duration if duration is not None else None
    stream = fleet.messages(started, rate)
    done = _Progress()
    stall = _StallWatch(tell)
    attempt = 0
    rng = rng or random.Random()
    with stall.watching():
        while True:
            try:
                connection = connect()
            except EaseeTailError as problem:
                if backoff is None or not problem.transient or attempt == 0:
                    raise
                connection = None
                lost: BaseException | str = problem.message
            if connection is not None:
                try:
                    channel = _open_channel(connection, target)
                    attempt = 0
                    _publish_all(channel, target.exchange or SIMULATE_EXCHANGE, stream,
                                 count, deadline, progress, stall, done)
                    return done.sent
                except _Stopped as stopped:
                    lost = stopped.problem
                finally:
                    if connection.is_open:
                        with contextlib.suppress(Exception):
                            connection.close()
            reason = _reason(lost)
            attempt += 1
            if backoff is None or (backoff.max_retries is not None
                                   and attempt > backoff.max_retries):
                raise BrokerClosed(f"publishing stopped after {plural(done.sent, 'message')}: "
                                   f"{reason}")
            wait = backoff.delay(attempt, rng)
            tell(f"connection lost after {plural(done.sent, 'message')} ({reason}); "
                 f"reconnecting in {wait:.1f} s (attempt {attempt})")
            time.sleep(wait)


def _reason(lost: BaseException | str) -> str:
    if isinstance(lost, str):
        return lost
    return str(lost).splitlines()[0][:160] if str(lost) else type(lost).__name__


def _open_channel(connection: pika.BlockingConnection, target: Target) -> BlockingChannel:
    try:
        channel = connection.channel()
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
    except (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelWrongStateError,
            OSError) as lost:
        raise _Stopped(lost) from None
    return channel


class _Stopped(Exception):
    def __init__(self, problem: BaseException) -> None:
        super().__init__(problem)
        self.problem = problem


def _publish_all(
    channel: BlockingChannel, exchange: str, stream: Iterator[tuple[float, WireMessage]],
    count: int | None, deadline: float | None, progress: Callable[[int], None],
    stall: _StallWatch, done: _Progress,
) -> None:
    try:
        while count is None or done.sent < count:
            if done.carried is None:
                moment, done.carried = next(stream)
                if deadline is not None and moment >= deadline:
                    return
                pause = moment - time.time()
                if pause > 0:
                    time.sleep(pause)
            message = done.carried
            with stall.publishing():
                channel.basic_publish(
                    exchange, message.routing_key, message.body,
                    pika.BasicProperties(headers=message.headers, delivery_mode=2))
            done.carried = None
            done.sent += 1
            if done.sent % 1000 == 0:
                progress(done.sent)
    except (pika.exceptions.AMQPError, OSError) as lost:
        raise _Stopped(lost) from None
