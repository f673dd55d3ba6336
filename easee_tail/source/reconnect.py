"""Riding through connection loss: reconnect with capped exponential backoff and jitter.

Wraps a broker source. Nothing is acknowledged for a connection that died: its unacked
deliveries go back to the queue and the broker delivers them again, marked redelivered, on
the next connection (at least once, never lost). An acknowledgement is never sent on a new
channel for a delivery of an old one, where the same tag would name another message.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from easee_tail.errors import ApiUnavailable, BrokerClosed, BrokerLoginRefused, EaseeTailError
from easee_tail.model import Delivery
from easee_tail.source import IDLE_TICK, Source
from easee_tail.text import plural


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5  # seconds before the first attempt (at most)
    cap: float = 30.0  # the longest wait between attempts
    max_retries: int | None = None  # None: keep trying
    retry_after_cap: float = 300.0  # the longest an API's Retry-After is honoured

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential, capped, with jitter: somewhere in the upper half of the ceiling, so
        that many clients cut off at once do not come back in step."""
        ceiling = min(self.cap, self.first * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


# connect(refresh): a new open source; refresh=True asks for new connection details first
# (Easee may have rotated the broker password). It raises what BrokerSource.open raises.
Connect = Callable[[bool], Source]


class ReconnectingSource:
    def __init__(
        self, first: Source, connect: Connect, backoff: Backoff, notify: Callable[[str], None],
        can_refresh: bool, rng: random.Random | None = None,
    ) -> None:
        self._current: Source | None = first
        self._connect = connect
        self._backoff = backoff
        self._notify = notify
        self._can_refresh = can_refresh
        self._rng = rng or random.Random()
        self.server = first.server
        self.queue = first.queue
        self.status: str | None = None  # "reconnecting …" while it does, for the table header
        self.reconnects = 0  # connections made again after one was lost

    def batches(self) -> Iterator[Sequence[Delivery]]:
        while True:
            source = self._current
            assert source is not None
            try:
                yield from source.batches()
                return
            except EaseeTailError as lost:
                if not lost.transient:  # the queue was deleted, say: that ends the run
                    raise
                reason = lost.message
            source.close()
            self._current = None
            yield from self._reconnect(reason)

    def ack_through(self, tag: int) -> None:
        assert self._current is not None  # acks follow a batch, and none comes while away
        # a lost ack: the broker redelivers those messages; the source's next read reconnects
        with contextlib.suppress(BrokerClosed):
            self._current.ack_through(tag)

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    def _reconnect(self, reason: str) -> Iterator[Sequence[Delivery]]:
        refresh = False
        attempt = 0
        told_to_wait = 0.0  # an API's Retry-After: never come back sooner
        lost_at = time.monotonic()
        while True:
            attempt += 1
            limit = self._backoff.max_retries
            if limit is not None and attempt > limit:
                self.status = None
                raise BrokerClosed(f"{reason}; gave up after {plural(limit, 'reconnection attempt')}")
            delay = max(self._backoff.delay(attempt, self._rng), told_to_wait)
            self.status = f"reconnecting (attempt {attempt}, next in {delay:.1f} s)"
            self._notify(f"{reason}; {self.status}")
            deadline = time.monotonic() + delay
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(IDLE_TICK, left))
                yield ()  # the loop checks for signals, --duration and redraws meanwhile
            told_to_wait = 0.0
            try:
                self._current = self._connect(refresh)
            except BrokerLoginRefused as refused:
                if not self._can_refresh:
                    raise
                reason, refresh = refused.message, True
                continue
            except EaseeTailError as failed:
                if not failed.transient:  # a certificate, a deleted queue, refused credentials
                    raise
                reason = failed.message
                if isinstance(failed, ApiUnavailable) and failed.retry_after is not None:
                    told_to_wait = min(failed.retry_after, self._backoff.retry_after_cap)
                continue
            self.status = None
            self.reconnects += 1
            self._notify(f"reconnected to {self._current.server} after "
                         f"{time.monotonic() - lost_at:.1f} s (attempt {attempt})")
            return
