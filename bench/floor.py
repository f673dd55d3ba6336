"""Row 11 of the benchmark: the floor under any consumer that decodes, a raw pika consumer
(row 1's, ack every 100) that also turns each message into easee-tail's JSON line: the
package's `decode` and `encode`, the lines written to stdout before each acknowledgement.

No easee-tail loop, sinks, filters or signals: what it costs to decode at all. Row 2's
easee-tail cannot beat it, so its ratio bounds what row 2's target may ask:

    python3 -m bench.floor URL QUEUE CA_FILE COUNT
"""

from __future__ import annotations

import os
import sys
import time

import pika
from pika.adapters.blocking_connection import BlockingChannel

from bench.baseline import ACK_EVERY, open_channel
from easee_tail.catalogue import load
from easee_tail.decode import decoder
from easee_tail.model import Delivery
from easee_tail.sinks.jsonl import encode


def main(url: str, queue: str, ca_file: str, count: int) -> None:
    connection, channel = open_channel(url, ca_file)
    decode = decoder(load())
    out = sys.stdout.fileno()
    lines = bytearray()
    seen = 0

    def on_message(channel: BlockingChannel, method: pika.spec.Basic.Deliver,
                   properties: pika.BasicProperties, body: bytes) -> None:
        nonlocal seen, lines
        seen += 1
        lines += encode(decode(Delivery(method.routing_key, body, properties.headers,
                                        time.time(), method.redelivered,
                                        method.delivery_tag)))
        if seen % ACK_EVERY == 0 or seen == count:
            os.write(out, lines)
            lines = bytearray()
            channel.basic_ack(method.delivery_tag, multiple=True)
        if seen == count:
            channel.stop_consuming()

    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    connection.close()
    print(seen, file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
