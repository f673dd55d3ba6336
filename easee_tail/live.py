"""What the live table draws from: one store, kept by one sink, read by the views.

Per message the store only keeps the record (a list append, in C); once a batch, on
`flush`, before it is acknowledged, it counts the batch (stats.py), brings each charger's
latest values up to date (state.py, when the state view can be shown: the newest of each
folded in at most five times a second), tells the stories
(the timeline view) and keeps the newest rows for the stream view. The views read it when
they draw, at most a few times a second, and draw only what is on screen.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from easee_tail.captures.story import LiveStory
from easee_tail.model import Batch, Record
from easee_tail.state import FleetState
from easee_tail.stats import Stats

ROWS = 200  # the stream view's newest records: more than a terminal is tall (and few:
# records held longer cost every stage, in the CPU's caches)


class LiveStore:
    def __init__(self, stats: Stats, fleet: FleetState | None = None,
                 story: LiveStory | None = None) -> None:
        self.stats = stats
        self.fleet = fleet  # None when the state view can never be shown
        self.story = story  # the same for the timeline view
        self.rows: deque[Record] = deque(maxlen=ROWS)
        self._pending: list[Record] = []
        self.write: Callable[[Record], None] = self._pending.append

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        now = time.monotonic()
        batch = Batch.of(pending)
        self.stats.take(batch, now)
        if self.fleet is not None:
            self.fleet.take(batch, now)
        if self.story is not None:
            self.story.take(batch)
        self.rows.extend(pending)
        pending.clear()

    def tick(self, now: float) -> None:
        self.stats.tick(now)

    def close(self) -> None:
        self.flush()

    @property
    def failed(self) -> int:
        """Records a bug kept out of a view (shown in the header: none, one hopes)."""
        return (self.fleet.failed if self.fleet is not None else 0) + \
            (self.story.failed if self.story is not None else 0)
