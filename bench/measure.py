"""The measurements behind bench/run: a consumer process timed and watched, the pipeline alone,
and the latency from delivery to a flushed JSON line at a steady rate."""

from __future__ import annotations

import fcntl
import io
import itertools
import multiprocessing
import os
import pty
import resource
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import pika

from easee_tail.catalogue import load
from easee_tail.decode import decode
from easee_tail.filters import FilterSpec, build_filter
from easee_tail.fleet import Fleet, WireMessage
from easee_tail.model import Delivery
from easee_tail.sinks.jsonl import encode
from tests.harness.rabbit import RabbitBroker

SAMPLE_EVERY = 0.1  # seconds between RSS readings
FRAME_MARK = b" queue "  # appears once in the table's header, so once per redraw


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float  # the kernel's high-water mark (VmHWM), as last read
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)
    redraws: int = 0
    cpu_seconds: float = 0.0  # the consumer's own, user and system: what it spent, waits aside
    # its main thread's time ready to run but waiting for a CPU (the kernel's run_delay): on
    # two cores shared with the broker, the rest of the wall clock
    cpu_wait_seconds: float = 0.0

    def rate(self, count: int) -> float:
        return count / self.seconds

    @property
    def redraws_per_second(self) -> float:
        return self.redraws / self.seconds

    @property
    def rss_growth_mb(self) -> float:
        """RSS at the end of the run against RSS once warmed up (a quarter of the way in)."""
        if len(self.rss_samples) < 4:
            return 0.0
        warm = self.rss_samples[len(self.rss_samples) // 4][1]
        late = max(mb for _, mb in self.rss_samples[-max(1, len(self.rss_samples) // 4):])
        return late - warm


def run_consumer(
    argv: Sequence[str], count: int, terminal: tuple[int, int] | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """Run a consumer until it exits (it stops itself after `count` messages).

    With `terminal`, its stdin, stdout and stderr are a pseudo-terminal of that size whose
    output is drained (and redraws counted) as a terminal emulator would; otherwise stdout
    goes to /dev/null.
    """
    env = {key: value for key, value in (env or os.environ).items()
           if not key.startswith("EASEE_") and key not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    drained: threading.Thread | None = None
    frames = [0]
    errors = b""
    # the children reaped so far: the consumer is the one reaped next (the broker lives on)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    if terminal is None:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, env=env)
    else:
        controller, child = pty.openpty()
        columns, lines = terminal
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        # its own session with the terminal as its controlling one, in the foreground, as
        # a shell starts it: the table then reads keys and keeps every view, as for a user.
        # setsid(1) does it and then becomes the consumer (the same process): Python code
        # run in the child (preexec_fn) would make subprocess fork this process, whose
        # simulated messages take hundreds of MB, at about 40 ms a spawn, counted against
        # the table's rows alone
        process = subprocess.Popen(["setsid", "--ctty", *argv], stdin=child, stdout=child,
                                   stderr=child, env=env)
        os.close(child)
        drained = threading.Thread(target=_drain_terminal, args=(controller, frames), daemon=True)
        drained.start()
    samples: list[tuple[float, float]] = []
    peak = [0.0]
    sampler = threading.Thread(target=_sample_rss, args=(process.pid, began, samples, peak),
                               daemon=True)
    sampler.start()
    if process.stderr is not None:
        errors = process.stderr.read()
    # exited but not reaped yet: the kernel still has what it counted of its scheduling
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    waited = _run_delay(process.pid)
    process.wait()
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if drained is not None:
        drained.join(timeout=5)
    sampler.join(timeout=1)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {process.returncode}: "
                           f"{errors.decode(errors='replace').strip()}")
    return Run(seconds, peak[0], samples, frames[0], cpu, waited)


def wait_quiet(broker: RabbitBroker, busy: float = 0.1, most: float = 10.0) -> float:
    """Wait until the broker's processes use less than `busy` of a CPU over a quarter of a
    second (at most `most` seconds), and say how long that took: a row started while the
    broker still pages or collects after the one before would pay for it."""
    assert broker.process is not None
    group = os.getpgid(broker.process.pid)
    tick = os.sysconf("SC_CLK_TCK")
    began = time.monotonic()
    spent = _group_cpu(group, tick)
    while time.monotonic() - began < most:
        time.sleep(0.25)
        now = _group_cpu(group, tick)
        if now - spent < busy * 0.25:
            break
        spent = now
    return time.monotonic() - began


def _group_cpu(group: int, tick: int) -> float:
    """CPU seconds (user and system) of the live processes of a process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # the fields after the command name, which may hold spaces and parentheses
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _run_delay(pid: int) -> float:
    """Seconds the process's main thread waited on a run queue (0.0 where not counted)."""
    try:
        with open(f"/proc/{pid}/schedstat") as schedstat:
            return int(schedstat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _drain_terminal(controller: int, frames: list[int]) -> None:
    tail = b""
    while True:
        try:
            data = os.read(controller, 1 << 16)
        except OSError:  # EIO: the last process holding the terminal exited
            break
        if not data:
            break
        seen = tail + data
        frames[0] += seen.count(FRAME_MARK) - tail.count(FRAME_MARK)
        tail = seen[-len(FRAME_MARK):]
    os.close(controller)


def _sample_rss(
    pid: int, began: float, samples: list[tuple[float, float]], peak: list[float]
) -> None:
    """VmRSS every SAMPLE_EVERY seconds, and VmHWM, the kernel's own peak since exec.

    (getrusage's ru_maxrss would do for the peak but for fork: it counts the pages the
    child shared with this process before exec, which holds all the simulated messages.)
    """
    path = f"/proc/{pid}/status"
    while True:
        try:
            with open(path) as status:
                fields = dict(line.split(":", 1) for line in status if line.startswith("Vm"))
        except OSError:
            return
        if "VmRSS" not in fields:
            return  # a zombie has no memory: the process ended
        samples.append((time.perf_counter() - began, int(fields["VmRSS"].split()[0]) / 1024))
        peak[0] = max(peak[0], int(fields["VmHWM"].split()[0]) / 1024)
        time.sleep(SAMPLE_EVERY)


def pipeline_alone(messages: list[WireMessage], passes: int = 3) -> float:
    """Row 5: decode -> filter -> JSON line for every message in memory, in msg/s.

    The best of a few passes, as timeit does: the others measure this machine's neighbours.
    """
    received = time.time()
    deliveries = [Delivery(message.routing_key, message.body, message.headers, received, False, tag)
                  for tag, message in enumerate(messages, start=1)]
    table = load()
    # a filter that keeps everything, so that every record is also encoded, as in row 2
    chargers = sorted({message.routing_key.split(".", 1)[0] for message in messages})
    keep = build_filter(FilterSpec(chargers=tuple(chargers)))
    best = float("inf")
    for _ in range(passes):
        began = time.perf_counter()
        lines = bytearray()
        for delivery in deliveries:
            record = decode(delivery, table)
            if keep is None or keep(record):
                lines += encode(record)
        best = min(best, time.perf_counter() - began)
        assert lines.count(b"\n") == len(deliveries)
    return len(deliveries) / best


@dataclass
class Latency:
    p50: float
    p99: float
    maximum: float
    lines: int


def latency_run(
    broker: RabbitBroker, easee_tail: str, url: str, ca: str, rate: float, seconds: float
) -> Latency:
    """Row 7: publish at a steady `rate`; time each line from `received` to our read of it."""
    total = max(1, int(rate * seconds))
    queue, exchange = "latency", "bench.latency"
    with broker.channel() as channel:
        channel.exchange_declare(exchange, "fanout")
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange)
    process = subprocess.Popen(
        [easee_tail, "--amqp-url", url, "--ca-file", ca, "--queue", queue, "--jsonl",
         "--count", str(total)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    arrivals: list[tuple[float, bytes]] = []
    reader = threading.Thread(target=_read_lines, args=(process.stdout.fileno(), arrivals),
                              daemon=True)
    reader.start()
    try:
        _wait_for_consumer(broker, queue, process)
        # Published from another process: a publishing thread here would hold the GIL for up
        # to the 5 ms switch interval while a line waits to be timed by the reader thread.
        publisher = multiprocessing.get_context("fork").Process(
            target=_publish_steadily, args=(broker, exchange, total, rate))
        publisher.start()
        publisher.join(timeout=seconds + 60)
        if publisher.exitcode != 0:
            raise RuntimeError(f"the latency publisher failed (exit {publisher.exitcode})")
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    if process.returncode != 0:
        raise RuntimeError(f"easee-tail exited with {process.returncode} in the latency run: "
                           f"{process.stderr.read().decode(errors='replace').strip()}")
    delays = sorted((read_at - _received(line)) * 1000 for read_at, line in arrivals)
    if not delays:
        raise RuntimeError("no lines came out of the latency run")
    return Latency(
        p50=delays[len(delays) // 2],
        p99=delays[min(len(delays) - 1, int(len(delays) * 0.99))],
        maximum=delays[-1],
        lines=len(delays),
    )


def _read_lines(descriptor: int, arrivals: list[tuple[float, bytes]]) -> None:
    partial = b""
    while True:
        data = os.read(descriptor, 1 << 16)
        now = time.time()
        if not data:
            return
        *complete, partial = (partial + data).split(b"\n")
        arrivals.extend((now, line) for line in complete)


def _received(line: bytes) -> float:
    text: str = orjson.loads(line)["received"]
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _wait_for_consumer(broker: RabbitBroker, queue: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return  # it failed; the caller reports its stderr
        with broker.channel() as channel:
            if channel.queue_declare(queue, passive=True).method.consumer_count:
                return
        time.sleep(0.1)
    raise RuntimeError("easee-tail did not start consuming in 30 s")


def _publish_steadily(broker: RabbitBroker, exchange: str, total: int, rate: float) -> None:
    fleet = Fleet(50, seed=2, delay_ms=(20, 60))
    with broker.channel() as channel:
        for moment, message in itertools.islice(fleet.messages(time.time(), rate), total):
            pause = moment - time.time()
            if pause > 0:
                time.sleep(pause)
            channel.basic_publish(exchange, message.routing_key, message.body,
                                  pika.BasicProperties(headers=message.headers))


def startup_ratios(easee_tail: str, runs: int = 15) -> tuple[float, dict[str, float]]:
    """Row 9: whole processes, spawn to exit: `python -c 'import click'` (the floor any click
    program pays), and easee-tail's fast paths, each the median of `runs` alternating spawns.
    The commands' seconds, by name, and the floor's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EASEE_")}
    completing = {**env, "_EASEE_TAIL_COMPLETE": "bash_complete",
                  "COMP_WORDS": "easee-tail --ob", "COMP_CWORD": "1"}
    python = str(Path(easee_tail).with_name("python"))
    if not Path(python).exists():
        python = sys.executable
    cases: dict[str, tuple[list[str], dict[str, str]]] = {
        "import click": ([python, "-c", "import click"], env),
        "--version": ([easee_tail, "--version"], env),
        "--help": ([easee_tail, "--help"], env),
        "completion": ([easee_tail], completing),
        "observations": ([easee_tail, "observations"], env),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (argv, environment) in cases.items():
            began = time.perf_counter()
            subprocess.run(argv, env=environment, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(values) for name, values in times.items()}
    floor = medians.pop("import click")
    return floor, medians


@dataclass
class FleetView:
    chargers: int
    records: int
    redraw_ms: dict[str, float]  # the median redraw of each view, on a 120x40 screen


def fleet_capture(path: Path, chargers: int, minutes: float, seed: int = 5) -> int:
    """A capture of `minutes` of a fleet of `chargers` (each sending a reading a minute, and
    its events): JSON lines as --save writes them. The number of lines."""
    # simulated time 60 times the clock's: `chargers` readings a (clock) second are one
    # reading a (simulated) minute per charger, and `minutes` of the fleet pass in as many
    # seconds of the clock
    fleet = Fleet(chargers, seed=seed, time_scale=60.0)
    table = load()
    start = time.time() - minutes * 60
    lines = 0
    with path.open("wb") as out:
        for moment, message in fleet.messages(start, float(chargers)):
            if moment > start + minutes:
                break
            record = decode(Delivery(message.routing_key, message.body, message.headers,
                                     message.received, False, 0), table)
            out.write(encode(record))
            lines += 1
    return lines


def fleet_lines(path: Path, chargers: int, lines: int, seed: int = 7) -> None:
    """A capture of `lines` JSON lines of a fleet of `chargers` in simulated time 3600 times
    the clock's (as `easee-tail demo --time-scale 3600`: sessions, trouble, telemetry), for
    a demo larger than `demo --chargers` allows."""
    fleet = Fleet(chargers, seed=seed, time_scale=3600.0)
    table = load()
    with path.open("wb") as out:
        for count, (moment, message) in enumerate(fleet.messages(time.time(), 1_000_000.0)):
            if count >= lines:
                break
            record = decode(Delivery(message.routing_key, message.body, message.headers,
                                     message.received or moment, False, 0), table)
            out.write(encode(record))


def fleet_redraws(path: Path, views: Sequence[str] = ("stream", "state", "timeline"),
                  draws: int = 30) -> FleetView:
    """Row 10's redraw times: the capture fed to the table's sinks in this process, then
    each view drawn `draws` times on a 120x40 screen (rendered to memory)."""
    from rich.console import Console

    from easee_tail.captures.files import open_captures
    from easee_tail.captures.reader import Reader, Sieve
    from easee_tail.captures.story import LiveStory, story_data
    from easee_tail.live import LiveStore
    from easee_tail.sinks.table import StateOptions, TableSink
    from easee_tail.state import FleetState, groups
    from easee_tail.stats import Stats

    table = load()
    stats = Stats()
    store = LiveStore(stats, FleetState(table, stats.per_charger), LiveStory(story_data(table)))
    records = 0
    reader = Reader(open_captures([str(path)], sys.stdin.buffer), Sieve(), lambda _line: None)
    for record in reader.records():
        store.write(record)
        records += 1
        if records % 100 == 0:  # the loop's batches
            store.flush()
    reader.finish()
    store.flush()
    timings: dict[str, float] = {}
    for view in views:
        console = Console(file=io.StringIO(), width=120, height=40, force_terminal=True,
                          color_system="truecolor")

        class Named:
            server, queue, status = "bench", "fleet", None

        sink = TableSink(console, store, Named(),  # type: ignore[arg-type]
                         StateOptions(groups(table), 300.0), view=view)
        spent = []
        moment = time.monotonic()
        for _ in range(draws):
            moment += 1.0  # a second later each time: every tick draws
            began = time.perf_counter()
            sink.tick(moment)
            spent.append((time.perf_counter() - began) * 1000)
        sink.close()
        timings[view] = statistics.median(spent)
    assert store.fleet is not None
    return FleetView(len(store.fleet), records, timings)
