"""Row 1 of the benchmark: the baseline, a raw pika consumer written for speed and nothing else.

BlockingConnection over verified TLS, prefetch 1000, a multiple=True ack every 100 messages,
the body ignored. Run as its own process, like easee-tail, so both pay for start-up alike:

    python3 -m bench.baseline URL QUEUE CA_FILE COUNT
"""

from __future__ import annotations

import ssl
import sys
from urllib.parse import unquote, urlsplit

import pika
from pika.adapters.blocking_connection import BlockingChannel

PREFETCH = 1000
ACK_EVERY = 100


def open_channel(url: str, ca_file: str) -> tuple[pika.BlockingConnection, BlockingChannel]:
    """A verified TLS connection to `url` and a channel with the prefetch set (row 11 too)."""
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=ca_file)
    parameters = pika.ConnectionParameters(
        host=parts.hostname, port=parts.port,
        credentials=pika.PlainCredentials(unquote(parts.username or ""),
                                          unquote(parts.password or "")),
        ssl_options=pika.SSLOptions(context, server_hostname=parts.hostname),
    )
    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    return connection, channel


def main(url: str, queue: str, ca_file: str, count: int) -> None:
    connection, channel = open_channel(url, ca_file)
    seen = 0

    def on_message(channel: BlockingChannel, method: pika.spec.Basic.Deliver,
                   _properties: pika.BasicProperties, _body: bytes) -> None:
        nonlocal seen
        seen += 1
        if seen % ACK_EVERY == 0 or seen == count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if seen == count:
            channel.stop_consuming()

    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    connection.close()
    print(seen)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
