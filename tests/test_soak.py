"""The soak: simulated fleet traffic through TLS with two broker restarts and a forced close on
the way. Every message must reach --save at least once and memory must stay flat.

CI runs it reduced (20,000 messages); by hand: EASEE_SOAK_MESSAGES=1000000 pytest tests/test_soak.py
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pika

from easee_tail.fleet import Fleet
from tests.conftest import BrokerQueue, Runner
from tests.harness.rabbit import RabbitBroker
from tests.test_reliability import queue_counts

MESSAGES = int(os.environ.get("EASEE_SOAK_MESSAGES", "20000"))
# Reduced, the run would be over before the first restart: a small window slows it to a
# few thousand a second. The full run uses the default window.
PREFETCH = "1000" if MESSAGES >= 200_000 else "1"


def identity(routing_key: str, stamp: str) -> tuple[str, str]:
    """A message is known by its routing key and the charger's timestamp (to the µs)."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return routing_key, moment.isoformat(timespec="microseconds")


class Publisher:
    """Fleet messages, persistent so that they survive the restarts, published in parts: the
    test adds the next part only after a fault, so the run cannot be over before the fault
    (on a loaded machine a rabbitmqctl call alone takes seconds). No confirm per message
    (far too slow for a million): closing the channel waits for the broker to take them."""

    def __init__(self, rabbit: RabbitBroker, queue: BrokerQueue) -> None:
        self._rabbit, self._queue = rabbit, queue
        self._stream = Fleet(300, seed=7).messages(time.time() - MESSAGES / 500, 500)
        self.expected: set[tuple[str, str]] = set()

    def publish(self, count: int) -> None:
        with self._rabbit.channel() as channel:
            for _moment, message in itertools.islice(self._stream, count):
                channel.basic_publish(
                    self._queue.exchange, message.routing_key, message.body,
                    pika.BasicProperties(headers=message.headers, delivery_mode=2))
                self.expected.add(identity(message.routing_key,
                                           json.loads(message.body)["Timestamp"]))


class Watch:
    """Lines in the save file so far, and the process's resident memory, sampled."""

    def __init__(self, pid: int, save: Path) -> None:
        self.pid, self.save = pid, save
        self.rss_mb: list[tuple[int, float]] = []  # (lines at the time, MB)
        self.lines = 0
        self._done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        position = 0
        while not self._done.is_set():
            if self.save.exists():
                with self.save.open("rb") as saved:
                    saved.seek(position)
                    chunk = saved.read()
                    position += len(chunk)
                    self.lines += chunk.count(b"\n")
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    self.rss_mb.append((self.lines, int(line.split()[1]) / 1024))
            time.sleep(0.25)

    def wait_for(self, lines: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while self.lines < lines:
            assert time.monotonic() < deadline, f"stuck at {self.lines} lines"
            time.sleep(0.05)

    def stop(self) -> None:
        self._done.set()


def test_soak_with_restarts_and_a_forced_close(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    fifth = MESSAGES // 5
    publisher = Publisher(rabbit, queue)
    publisher.publish(2 * fifth)
    save = tmp_path / "soak.jsonl"
    args = ["--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
            "--ca-file", str(cli.certs.ca_file), "--jsonl", "--save", str(save),
            "--prefetch", PREFETCH]
    process = cli.popen(*args, "--count", str(MESSAGES), stdout=subprocess.DEVNULL)
    watch = Watch(process.pid, save)
    errors: list[str] = []
    stream = process.stderr
    assert stream is not None
    reader = threading.Thread(target=lambda: errors.extend(iter(stream.readline, "")),
                              daemon=True)
    reader.start()

    def reconnected(times: int) -> None:
        deadline = time.monotonic() + 120
        while sum("reconnected to" in line for line in errors) < times:
            assert time.monotonic() < deadline, "".join(errors)
            time.sleep(0.05)

    try:  # each fault comes while messages are in flight and before the run can end
        watch.wait_for(fifth)
        rabbit.ctl("stop_app")
        rabbit.ctl("start_app")
        reconnected(1)
        publisher.publish(fifth)
        watch.wait_for(2 * fifth)
        rabbit.ctl("close_all_connections", "soak test")
        reconnected(2)
        publisher.publish(fifth)
        watch.wait_for(3 * fifth)
        rabbit.ctl("stop_app")
        rabbit.ctl("start_app")
        reconnected(3)
        publisher.publish(MESSAGES - 4 * fifth)
        code = process.wait(timeout=900)
    finally:
        watch.stop()
        if process.poll() is None:
            process.kill()
    reader.join(timeout=5)
    stderr = "".join(errors)
    assert code == 0, stderr[-2000:]
    assert stderr.count("reconnected to") == 3
    assert "Traceback" not in stderr

    # --count counted the duplicates too: what it left in the queue is exactly what it had
    # not yet seen. A second run takes those (nothing lost, only not yet consumed).
    ready, unacked = queue_counts(rabbit, queue)
    assert unacked == 0
    if ready:
        rest = cli.run(*args, "--count", str(ready))
        assert rest.returncode == 0, rest.stderr
    seen = set()
    redelivered = lines = 0
    for line in save.read_text().splitlines():
        record = json.loads(line)
        seen.add(identity(record["routing_key"], record["timestamp"]))
        redelivered += record["redelivered"]
        lines += 1
    assert len(publisher.expected) == MESSAGES  # distinct: "every message" can be checked
    assert seen == publisher.expected
    assert queue.depth() == 0

    # memory: flat after warm-up (a fifth of the way), whatever the faults did
    warm = [mb for lines, mb in watch.rss_mb if lines >= MESSAGES // 5]
    assert warm, "too few memory samples"
    assert max(warm) - warm[0] < 10, f"RSS grew from {warm[0]:.1f} to {max(warm):.1f} MB"
    assert max(warm) < 80
    print(f"soak: {MESSAGES:,} messages, {lines - len(seen)} saved twice, "
          f"{redelivered} marked redelivered, "
          f"RSS {warm[0]:.1f} -> {max(warm):.1f} MB")
    for line in errors:
        if "reconnected" in line or "was lost" in line:
            print("soak:", line.strip())
