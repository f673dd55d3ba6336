"""`easee-tail simulate`: the demo's fleet, published to a real broker, for partners testing
their own consumers (and for our tests and benchmark).

Messages keep their real routing keys (`<serial>.O.<id>`) and ArrivalTime headers. Given an
exchange, they are published to it; given only a queue, a private topic exchange bound to
that queue carries them (the default exchange would replace the routing key with the queue's
name). Publisher confirms: a message counted as sent is in the broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pika
import pika.exceptions

from easee_tail.errors import BrokerClosed, QueueNotFound
from easee_tail.fleet import Fleet

SIMULATE_EXCHANGE = "easee-tail.simulate"


@dataclass(frozen=True)
class Target:
    queue: str | None
    exchange: str | None


def publish(
    connection: pika.BlockingConnection, fleet: Fleet, target: Target, rate: float,
    count: int | None, duration: float | None, progress: Callable[[int], None],
) -> int:
    """Publish at `rate` until `count` messages or `duration` seconds; the number sent."""
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
    try:
        for moment, message in fleet.messages(started, rate):
            if (count is not None and sent >= count) or (deadline is not None
                                                         and moment >= deadline):
                break
            pause = moment - time.time()
            if pause > 0:
                time.sleep(pause)
            channel.basic_publish(exchange, message.routing_key, message.body,
                                  pika.BasicProperties(headers=message.headers, delivery_mode=2))
            sent += 1
            if sent % 1000 == 0:
                progress(sent)
    except (pika.exceptions.AMQPError, OSError) as lost:
        raise BrokerClosed(f"publishing stopped after {sent} messages: "
                           f"{str(lost).splitlines()[0][:160] or type(lost).__name__}") from None
    return sent
