"""Row 5 of the benchmark: the pipeline alone, no broker (decode -> filter -> JSONL encode).

Run: python3 bench/pipeline.py [N]. Prints messages per second over N simulated messages.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from easee_tail.catalogue import load
from easee_tail.decode import decode
from easee_tail.filters import build_filter
from easee_tail.fleet import Fleet
from easee_tail.model import Delivery
from easee_tail.sinks.jsonl import encode


def main(count: int) -> None:
    start = time.time()
    deliveries = [
        Delivery(message.routing_key, message.body, message.headers, start, False, tag)
        for tag, (_, message) in enumerate(
            itertools.islice(Fleet(200, seed=1).messages(start, 1000), count))
    ]
    table = load()
    keep = build_filter([], [109, 120, 121, 124, 182, 183, 184])
    began = time.perf_counter()
    written = 0
    for delivery in deliveries:
        record = decode(delivery, table)
        if keep is None or keep(record):
            written += len(encode(record))
    elapsed = time.perf_counter() - began
    print(f"pipeline alone: {count:,} messages in {elapsed:.2f} s = {count / elapsed:,.0f} msg/s "
          f"({written:,} bytes of JSONL)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
