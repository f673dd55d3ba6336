"""Deliveries from the simulated fleet, in real time, in-process: no account, no network."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from easee_tail.fleet import Fleet
from easee_tail.model import Delivery
from easee_tail.source import IDLE_TICK

MAX_BATCH = 1000


class DemoSource:
    queue = "(in-process)"
    status: str | None = None
    reconnects = 0

    def __init__(self, fleet: Fleet, rate: float) -> None:
        self._fleet = fleet
        self._rate = rate
        scale = f", time ×{fleet.time_scale:g}" if fleet.time_scale != 1 else ""
        self.server = f"demo: simulated fleet{scale}, no network"

    def batches(self) -> Iterator[Sequence[Delivery]]:
        messages = self._fleet.messages(time.time(), self._rate)
        moment, message = next(messages)  # endless: the first charger never goes silent
        tag = 0
        while True:
            batch: list[Delivery] = []
            now = time.time()
            while moment <= now and len(batch) < MAX_BATCH:
                tag += 1
                # received on the fleet's clock, which runs faster with a time scale
                batch.append(Delivery(message.routing_key, message.body, message.headers,
                                      now + message.received - moment, False, tag))
                moment, message = next(messages)
            yield batch
            pause = min(moment - time.time(), IDLE_TICK)
            if pause > 0:
                time.sleep(pause)

    def ack_through(self, tag: int) -> None:
        pass  # nothing to give back: the fleet lives in this process

    def close(self) -> None:
        pass
