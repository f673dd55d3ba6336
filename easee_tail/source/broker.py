"""Deliveries from the Easee queue over AMQP (pika's BlockingConnection), TLS verified.

Manual acknowledgement only; the consumer loop acks through a tag once the sinks wrote it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from easee_tail.defaults import DEFAULT_PREFETCH, HEARTBEAT
from easee_tail.details import ConnectionDetails
from easee_tail.errors import (
    BrokerClosed,
    BrokerLoginRefused,
    EaseeTailError,
    PeekUnsafe,
    QueueLocked,
    QueueNotFound,
    QueueShared,
    TlsFailure,
    TlsHandshakeFailed,
    Unreachable,
)
from easee_tail.model import Delivery
from easee_tail.source import IDLE_TICK
from easee_tail.text import plural
from easee_tail.tls import client_context, describe_tls_error

# pika logs connection trouble itself; easee-tail reports it once, its own way, without
# pika's details (--debug turns pika's log on).
_PIKA_LOG = logging.getLogger("pika")
_PIKA_LOG.addHandler(logging.NullHandler())
_PIKA_LOG.propagate = False

BLOCKED_TIMEOUT = 300  # seconds pika waits on a connection the broker blocked
PEEK_MEMORY = 100_000  # --peek: messages remembered as shown, so that a bounce is not shown
PEEK_BOUNCE_PAUSE = 0.005  # seconds: a message that came back to us is left to the others
RESOURCE_LOCKED = 405  # AMQP reply code: an exclusive queue of another connection
DELIVERY_COUNT = "x-delivery-count"  # added by a quorum queue to a message delivered again
ACK_EVERY = 200  # a fifth of the default prefetch: the broker never waits for credit


@dataclass(frozen=True)
class QueueState:
    messages: int  # ready messages waiting (the backlog)
    consumers: int  # other consumers attached right now


class BrokerSource:
    def __init__(
        self,
        details: ConnectionDetails,
        ca_file: str | None = None,
        prefetch: int = DEFAULT_PREFETCH,
        insecure: bool = False,
        heartbeat: int = HEARTBEAT,
        peek: bool = False,
        stream_offset: str | int | None = None,
    ) -> None:
        self._details = details
        self._ca_file = ca_file
        self._prefetch = prefetch
        self._insecure = insecure
        self._heartbeat = heartbeat
        self._peek = peek
        self._stream_offset = stream_offset  # a stream queue: where to start reading
        self._seen: OrderedDict[int, None] = OrderedDict()  # --peek: what was shown already
        self.status: str | None = None
        self.reconnects = 0  # one connection: ReconnectingSource counts them
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self.server = details.display_url
        self.queue = details.queue

    def open(self, allow_shared: bool = False) -> QueueState:
        """Connect, check the queue, and refuse to steal from another consumer."""
        self._connection = self._connect()
        self._channel = self._connection.channel()
        state = queue_state(self._channel, self._details)
        if state.consumers and not (allow_shared or self._peek):
            raise QueueShared(
                f"{plural(state.consumers, 'other consumer')} attached to {self._details.queue!r}: "
                "RabbitMQ gives each message to one consumer only, so every message easee-tail "
                "took would never reach them (your production service?); stop them or pass "
                "--allow-shared if losing those messages is acceptable"
            )
        self._channel.basic_qos(prefetch_count=1 if self._peek else self._prefetch)
        return state

    def batches(self) -> Iterator[Sequence[Delivery]]:
        assert self._connection is not None and self._channel is not None
        pending: list[Delivery] = []
        clock = time.time
        stamp = 0.0
        peek = self._peek

        def on_message(
            _channel: BlockingChannel,
            method: pika.spec.Basic.Deliver,
            properties: pika.BasicProperties,
            body: bytes,
        ) -> None:
            nonlocal stamp
            routing_key = method.routing_key
            if not isinstance(routing_key, str):  # pika hands over bytes that are not UTF-8
                routing_key = bytes(routing_key).decode("utf-8", "backslashreplace")
            headers = properties.headers
            if peek:
                if headers and DELIVERY_COUNT in headers:
                    # A quorum queue counts every return against its delivery limit and
                    # drops the message at the limit: --peek would destroy what it looks at.
                    _channel.basic_nack(method.delivery_tag, requeue=True)
                    counted.append(headers[DELIVERY_COUNT])
                    return
                if self._shown_before(routing_key, body, headers):
                    # back again: return it at once, out of the other consumer's way
                    _channel.basic_nack(method.delivery_tag, requeue=True)
                    time.sleep(PEEK_BOUNCE_PAUSE)
                    return
            if not pending:  # pika hands over what one read brought: one time stamps them all
                stamp = clock()
            pending.append(Delivery(
                routing_key, body, headers, stamp, method.redelivered, method.delivery_tag))

        cancelled: list[object] = []
        counted: list[object] = []  # --peek: delivery counts seen (a quorum queue)
        try:
            self._channel.add_on_cancel_callback(cancelled.append)
            self._channel.basic_consume(
                self._details.queue, on_message, auto_ack=False,
                arguments={"x-stream-offset": self._stream_offset}
                if self._stream_offset is not None else None)
            while True:
                # what the reads between a batch's pieces brought is in hand: a wait for
                # more would hold it back (the end of a backlog by IDLE_TICK)
                self._read(0 if pending else IDLE_TICK)
                if counted:
                    raise PeekUnsafe(
                        f"--peek cannot look without taking on {self._details.queue!r}: it is a "
                        "quorum queue (its messages carry x-delivery-count), which counts every "
                        "return against its delivery limit and then drops the message; consume "
                        "a queue of your own instead (nothing was dropped: easee-tail stopped "
                        "at the first sign)")
                if pending:
                    batch, pending = pending, []
                    for start in range(0, len(batch), ACK_EVERY):
                        if start:
                            # A closed connection shows only on a read (an ack into a closed
                            # socket "succeeds"): look before writing more of a stale batch,
                            # which would come again as duplicates.
                            self._read(0)
                        yield batch[start:start + ACK_EVERY]
                else:
                    yield ()
                # what arrived before it is written and acked; then the stream has stopped
                if self._channel.is_closed:
                    raise BrokerClosed(f"the broker closed the channel{_closing(self._channel)}")
                if cancelled:
                    raise self._consumer_cancelled()
        except pika.exceptions.ChannelClosedByBroker as closed:
            raise BrokerClosed(
                f"the broker closed the channel ({closed.reply_code}: {closed.reply_text})"
            ) from None
        except (pika.exceptions.AMQPError, OSError) as lost:
            raise BrokerClosed(f"the connection to {self.server} was lost: {_reason(lost)}") from None

    def _consumer_cancelled(self) -> EaseeTailError:
        """The broker cancelled our consumer (basic.cancel): the queue was deleted, or its
        node failed over. Which of the two decides whether the run can go on."""
        assert self._connection is not None
        queue = self._details.queue
        try:
            channel = self._connection.channel()
            queue_state(channel, self._details)
            with contextlib.suppress(pika.exceptions.AMQPError):
                channel.close()
        except QueueNotFound:
            return QueueNotFound(f"the queue {queue!r} was deleted on {self.server} while "
                                 "easee-tail consumed it (the broker cancelled the consumer)")
        except (pika.exceptions.AMQPError, OSError) as lost:
            return BrokerClosed(f"the broker cancelled the consumer of {queue!r} and the "
                                f"connection was lost: {_reason(lost)}")
        return BrokerClosed(f"the broker cancelled the consumer of {queue!r} (the queue is "
                            "still there: a node failover or a policy change)")

    def _read(self, time_limit: float) -> None:
        assert self._connection is not None
        if not self._connection.is_open:  # it died under an acknowledgement
            raise BrokerClosed(f"the connection to {self.server} was lost")
        self._connection.process_data_events(time_limit=time_limit)

    def ack_through(self, tag: int) -> None:
        assert self._channel is not None
        try:
            if self._peek:  # shown and saved: now it goes back to the queue, for the others
                self._channel.basic_nack(delivery_tag=tag, multiple=True, requeue=True)
            else:
                self._channel.basic_ack(delivery_tag=tag, multiple=True)
        except (pika.exceptions.AMQPError, OSError) as lost:
            raise BrokerClosed(
                f"the connection to {self.server} was lost before an acknowledgement: "
                f"{_reason(lost)}"
            ) from None

    def _shown_before(self, routing_key: str, body: bytes,
                      headers: dict[str, object] | None) -> bool:
        # the publisher's headers only: the broker adds its own (x-delivery-count, x-death)
        # to a message it delivers again, and the same message must hash the same
        own = {key: value for key, value in headers.items() if not key.startswith("x-")} \
            if headers else None
        key = hash((routing_key, body, repr(own)))
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > PEEK_MEMORY:
            self._seen.popitem(last=False)
        return False

    def close(self) -> None:
        """Close politely; unacknowledged deliveries go back to the queue."""
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()

    def _connect(self) -> pika.BlockingConnection:
        return connect(self._details, self._ca_file, self._insecure, self._heartbeat)


def connect(
    details: ConnectionDetails, ca_file: str | None = None, insecure: bool = False,
    heartbeat: int = HEARTBEAT, name: str = "easee-tail",
) -> pika.BlockingConnection:
    """A verified TLS connection (unless plain AMQP was asked for), failures as our errors."""
    server = details.display_url
    parameters = pika.ConnectionParameters(
        host=details.server,
        port=details.port,
        virtual_host=details.virtual_host,
        credentials=pika.PlainCredentials(details.username, details.password),
        heartbeat=heartbeat,
        blocked_connection_timeout=BLOCKED_TIMEOUT,
        connection_attempts=1,
        socket_timeout=10,
        stack_timeout=20,
        ssl_options=(
            pika.SSLOptions(client_context(ca_file, insecure),
                            server_hostname=details.server)
            if details.use_ssl else None
        ),
        client_properties={"connection_name": name, "product": "easee-tail"},
    )
    try:
        return pika.BlockingConnection(parameters)
    except pika.exceptions.ProbableAuthenticationError:
        raise BrokerLoginRefused(
            f"the broker at {server} refused the AMQP login for {details.username!r}; "
            "the connection details may have been rotated: run again to fetch new ones"
        ) from None
    except pika.exceptions.ProbableAccessDeniedError:
        raise BrokerLoginRefused(
            f"the broker at {server} refused access to virtual host "
            f"{details.virtual_host!r} for {details.username!r}"
        ) from None
    except (pika.exceptions.AMQPConnectionError, OSError) as failed:
        # pika raises socket and SSL errors as they are on some paths, wrapped on others
        raise _connection_error(failed, details) from None


def queue_state(channel: BlockingChannel, details: ConnectionDetails) -> QueueState:
    """The queue's backlog and consumers, by a passive declare (which changes nothing)."""
    try:
        declared = channel.queue_declare(details.queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as closed:
        if closed.reply_code == RESOURCE_LOCKED:
            raise QueueLocked(
                f"the queue {details.queue!r} on {details.display_url} is exclusive to another "
                f"connection (in use by another connection): {closed.reply_text}"
            ) from None
        raise QueueNotFound(
            f"the queue {details.queue!r} does not exist on {details.display_url} "
            f"(or this user may not read it): {closed.reply_text}"
        ) from None
    return QueueState(declared.method.message_count, declared.method.consumer_count)


def _connection_error(failed: BaseException, details: ConnectionDetails) -> EaseeTailError:
    causes = list(_causes(failed))
    where = f"{details.server}:{details.port}"
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return TlsFailure(
                f"TLS verification failed for the broker {where} ({describe_tls_error(cause)}); "
                "if it uses a private CA, pass --ca-file"
            )
        if isinstance(cause, ssl.SSLError):
            return TlsHandshakeFailed(
                f"the TLS handshake with the broker {where} failed ({describe_tls_error(cause)}); "
                "is that port a TLS (amqps) port?"
            )
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return Unreachable(f"cannot reach the broker {where}: the host name does not resolve")
        if isinstance(cause, ConnectionRefusedError):
            return Unreachable(f"cannot reach the broker {where}: connection refused")
        if isinstance(cause, TimeoutError):
            return Unreachable(f"cannot reach the broker {where}: the connection timed out")
        if isinstance(cause, pika.exceptions.IncompatibleProtocolError):
            return Unreachable(
                f"{where} did not speak AMQP"
                + (" over TLS (is it a plain port?)" if details.use_ssl else "")
            )
    return Unreachable(f"cannot connect to the broker {where}: {_reason(failed)}")


def _causes(problem: BaseException) -> Iterator[BaseException]:
    """The exception and everything nested in it (pika wraps failures several levels deep)."""
    stack: list[BaseException] = [problem]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        for nested in getattr(current, "exceptions", None) or ():
            if isinstance(nested, BaseException):
                stack.append(nested)
        wrapped = getattr(current, "exception", None)  # pika's connector errors
        if isinstance(wrapped, BaseException):
            stack.append(wrapped)
        stack.extend(c for c in (current.__cause__, current.__context__) if c is not None)


def _closing(channel: BlockingChannel) -> str:
    """Why the broker closed the channel: pika keeps the reason, with no public accessor."""
    reason = getattr(channel, "_closing_reason", None)
    if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
        return f" ({reason.reply_code}: {reason.reply_text})"
    return ""


def _reason(problem: BaseException) -> str:
    text = str(problem).strip() or type(problem).__name__
    return text.splitlines()[0][:160]

