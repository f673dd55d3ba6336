"""Where deliveries come from. Every source offers the same small interface to the loop."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from easee_tail.model import Delivery


class Source(Protocol):
    @property
    def server(self) -> str:
        """What to call the origin in the table header (never with a password)."""
        ...

    @property
    def queue(self) -> str: ...

    @property
    def status(self) -> str | None:
        """Trouble worth a line in the table header ("reconnecting …"), or None."""
        ...

    @property
    def reconnects(self) -> int:
        """How many times a lost connection was made again (0 for a source that does not)."""
        ...

    def batches(self) -> Iterator[Sequence[Delivery]]:
        """Deliveries as they arrive; an empty batch at least every `IDLE_TICK` seconds."""
        ...

    def ack_through(self, tag: int) -> None:
        """Acknowledge every delivery up to and including `tag`."""
        ...

    def close(self) -> None: ...


IDLE_TICK = 0.2  # seconds: how often the loop gets control back when nothing arrives
