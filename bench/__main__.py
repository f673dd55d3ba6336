"""bench/run: easee-tail against a raw pika consumer, on one private RabbitMQ over TLS, in one run.

Every broker row drains its own copy of the same simulated messages (one fanout exchange fills
all the queues), each consumer a separate process timed from spawn to exit, so start-up counts
for both. Ratios to the baseline are what to compare between machines, not the msg/s.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from statistics import median

import pika

from bench.measure import (
    FleetView,
    Run,
    fleet_capture,
    fleet_redraws,
    latency_run,
    pipeline_alone,
    run_consumer,
    startup_ratios,
    wait_quiet,
)
from easee_tail.fleet import Fleet, WireMessage
from tests.harness.certs import make_certificates
from tests.harness.rabbit import RabbitBroker

RESULTS = Path(__file__).resolve().parent / "results"
TABLE_SIZE = (120, 40)  # columns, rows of the pseudo-terminal for the table row
REDRAWS = 5  # the table's most redraws a second
# the sizes of a run, and of a --quick one
FULL: dict[str, float] = {
    "messages": 200_000, "rss_messages": 1_000_000, "latency_rate": 1000.0,
    "latency_seconds": 10.0, "rounds": 5, "fleet_chargers": 10_000, "fleet_minutes": 60.0,
    "startup_runs": 15,
}
QUICK: dict[str, float] = {
    **FULL, "messages": 50_000, "rss_messages": 200_000, "latency_seconds": 5.0, "rounds": 3,
    "fleet_chargers": 2_000, "fleet_minutes": 15.0, "startup_runs": 5,
}


@dataclass
class Row:
    number: int
    name: str
    rate: float | None = None  # msg/s
    ratio: float | None = None  # to the baseline, or to the target for row 5
    target: str = ""
    met: bool | None = None
    detail: str = ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes for a look before a commit (about 2 minutes; "
                             "rougher ratios): each size below gives its --quick value; "
                             "sizes given explicitly still count")
    parser.add_argument("--messages", type=int,
                        help="messages per throughput row (default 200,000; --quick 50,000)")
    parser.add_argument("--rss-messages", type=int,
                        help="messages for the peak-RSS rows (default 1,000,000; --quick 200,000)")
    parser.add_argument("--latency-rate", type=float,
                        help="steady publishing rate for the latency row (default 1000 msg/s)")
    parser.add_argument("--latency-seconds", type=float,
                        help="how long the latency row publishes (default 10 s; --quick 5)")
    parser.add_argument("--rounds", type=int,
                        help="alternating rounds of rows 1-4, 8 and 11-13, after one warm-up round "
                             "that is not counted; each ratio is the "
                             "median (default 5; --quick 3)")
    parser.add_argument("--fleet-chargers", type=int,
                        help="chargers in row 10's fleet (default 10,000; --quick 2,000)")
    parser.add_argument("--fleet-minutes", type=float,
                        help="minutes of that fleet, a reading a minute per charger "
                             "(default 60; --quick 15)")
    parser.add_argument("--startup-runs", type=int,
                        help="spawns of each command in row 9; the median counts "
                             "(default 15; --quick 5)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="directory for the JSON result (default bench/results)")
    args = parser.parse_args(argv)
    for name, size in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, size)

    easee_tail = shutil.which("easee-tail", path=str(Path(sys.executable).parent)) \
        or shutil.which("easee-tail")
    if easee_tail is None:
        parser.error("easee-tail is not installed: run `pip install -e .` (bench/run does)")

    work = Path(tempfile.mkdtemp(prefix="easee-bench-"))
    certs = make_certificates(work / "certs")
    broker = RabbitBroker(work / "rabbit", certs)
    say(f"starting a private RabbitMQ in {work} …")
    broker.start()
    try:
        rows, machine = measure_all(args, broker, easee_tail, work)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(render(rows, machine, args.messages))
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    kind = "-quick" if args.quick else ""
    path = args.results / f"{stamp}-{platform.node() or 'machine'}{kind}.json"
    path.write_text(json.dumps({
        "machine": machine, "quick": args.quick, "messages": args.messages,
        "rss_messages": args.rss_messages, "rows": [asdict(row) for row in rows],
    }, indent=2) + "\n")
    print(f"\nwritten to {path}")
    return 0


def measure_all(
    args: argparse.Namespace, broker: RabbitBroker, easee_tail: str, work: Path
) -> tuple[list[Row], dict[str, object]]:
    count: int = args.messages
    say(f"simulating {count:,} messages from 200 chargers …")
    messages = simulate(count)
    machine = describe_machine(broker)
    url = broker.amqps_url()
    ca = str(broker.certs.ca_file)
    tail = [easee_tail, "--amqp-url", url, "--ca-file", ca, "--count", str(count)]
    save_file = work / "saved.jsonl"
    rounds: list[dict[str, Run]] = []
    saved_lines = []
    waited: list[float] = []  # before each row, for the broker to go quiet
    # round 0 warms the broker, the page cache and the CPU's clocks up, and is not counted:
    # the first round of a run was often slow for every row, and most for the rows run first
    for round_number in range(0, args.rounds + 1):
        names = {row: f"{row}-{round_number}" for row in ROWS}
        say(f"round {round_number} of {args.rounds}"
            + (" (a warm-up, not counted)" if not round_number else "")
            + f": pre-loading {count:,} messages into each of {len(names)} queues …")
        preload(broker, f"bench.round{round_number}", list(names.values()), messages, count)
        runs: dict[str, Run] = {}
        # each round starts one row later: a queue drained late in a round waited longest
        # beside the others (the broker pages and collects meanwhile), so no row is always
        # the last to run
        order = ROWS[round_number % len(ROWS):] + ROWS[:round_number % len(ROWS)]
        for row in order:
            if row == "save":
                save_file.unlink(missing_ok=True)
            waited.append(wait_quiet(broker))
            runs[row] = run_row(row, tail, names[row], url, ca, count, save_file)
            if row == "save" and round_number:
                saved_lines.append(count_lines(save_file))
        for name in names.values():
            left = depth(broker, name)
            if left:
                raise RuntimeError(f"{left} messages were left in {name}: a run did not drain it")
            delete_queue(broker, name)
        if round_number:
            rounds.append(runs)

    machine["broker_quiet_before_a_row"] = (
        f"median {median(waited):.2f} s, at most {max(waited):.2f} s (< 10 % of a CPU "
        "over 0.25 s)")
    say("5 the pipeline alone …")
    alone = pipeline_alone(messages)

    rss_separate = args.rss_messages != count
    if rss_separate:
        say(f"pre-loading {args.rss_messages:,} messages into each of 2 queues for RSS …")
        preload(broker, "bench.rss", ["rss-jsonl", "rss-table"], messages, args.rss_messages)
        rss_tail = [easee_tail, "--amqp-url", url, "--ca-file", ca, "--count", str(args.rss_messages)]
        say(f"6 peak RSS over {args.rss_messages:,} messages: --jsonl …")
        rss_jsonl = run_consumer([*rss_tail, "--queue", "rss-jsonl", "--jsonl"], args.rss_messages)
        say(f"6 peak RSS over {args.rss_messages:,} messages: table …")
        rss_table = run_consumer([*rss_tail, "--queue", "rss-table"], args.rss_messages,
                                 terminal=TABLE_SIZE)
    else:
        rss_jsonl, rss_table = rounds[-1]["jsonl"], rounds[-1]["table"]

    say(f"7 added latency at {args.latency_rate:,.0f} msg/s for {args.latency_seconds:.0f} s …")
    latency = latency_run(broker, easee_tail, url, ca, args.latency_rate, args.latency_seconds)

    say(f"9 start-up against `python -c 'import click'`, {args.startup_runs} spawns each …")
    floor, startups = startup_ratios(easee_tail, args.startup_runs)

    capture = work / "fleet.jsonl"
    say(f"10 a fleet of {args.fleet_chargers:,} chargers, {args.fleet_minutes:g} minutes: "
        "simulating …")
    lines = fleet_capture(capture, args.fleet_chargers, args.fleet_minutes)
    replay = [easee_tail, "replay", str(capture), "--speed", "1e9"]
    say(f"10 … {lines:,} records replayed into the table, then the state view …")
    fleet_table = run_consumer(replay, lines, terminal=TABLE_SIZE)
    fleet_state = run_consumer([*replay, "--view", "state"], lines, terminal=TABLE_SIZE)
    say("10 … and each view's redraw timed …")
    fleet = fleet_redraws(capture)
    capture.unlink()

    base = median([runs["baseline"].rate(count) for runs in rounds])
    last = rounds[-1]
    rows = [
        Row(1, "baseline: raw pika consumer, TLS, prefetch 1000, ack every 100",
            base, 1.0, detail=seconds_detail(rounds, "baseline")),
        floor_judged(2, "easee-tail --jsonl > /dev/null", rounds, "jsonl", count, 0.97),
        floor_judged(3, "easee-tail --jsonl --save FILE > /dev/null", rounds, "save", count,
                     0.95, extra=f", {min(saved_lines):,} lines saved"),
        redraw_bound(floor_judged(
            4, f"easee-tail table, {TABLE_SIZE[0]}x{TABLE_SIZE[1]} terminal", rounds, "table",
            count, 0.90, extra=f", {last['table'].redraws_per_second:.1f} redraws/s"),
            rounds, "table"),
        Row(5, "pipeline alone: decode, filter, JSON (no broker)", alone,
            alone / 200_000, ">= 200,000 msg/s", alone >= 200_000),
        rss_row(rss_jsonl, rss_table, args.rss_messages),
        Row(7, f"added latency at {args.latency_rate:,.0f} msg/s, delivery to flushed line",
            None, None, "p99 < 2 ms", latency.p99 < 2.0,
            f"p50 {latency.p50:.2f} ms, p99 {latency.p99:.2f} ms, max {latency.maximum:.2f} ms "
            f"over {latency.lines:,} lines"),
        redraw_bound(floor_judged(
            8, f"easee-tail --view state, {TABLE_SIZE[0]}x{TABLE_SIZE[1]} terminal", rounds,
            "state", count, 0.90, extra=f", {last['state'].redraws_per_second:.1f} redraws/s"),
            rounds, "state"),
        startup_row(floor, startups),
        fleet_row(fleet, fleet_table, fleet_state, args.fleet_minutes),
        floor_row(rounds, count),
        drain_row(rounds, count),
        with_cpu(pair_row(13, "easee-tail --jsonl --metrics 0 against --jsonl", rounds,
                          "metrics", "jsonl", count, 0.95), rounds, "metrics", "jsonl"),
    ]
    if min(saved_lines) != count:
        rows[2].met = False
        rows[2].detail += f" (expected {count:,})"
    return rows, machine


ROWS = ("baseline", "floor", "jsonl", "save", "metrics", "table", "state")
_SAYING = {
    "baseline": "1 baseline: raw pika", "floor": "11 floor: raw pika + easee-tail's decode "
    "and encode", "jsonl": "2 easee-tail --jsonl > /dev/null", "save": "3 easee-tail --jsonl "
    "--save FILE > /dev/null", "metrics": "13 easee-tail --jsonl --metrics 0 > /dev/null",
    "table": f"4 easee-tail table in a {TABLE_SIZE[0]}x{TABLE_SIZE[1]} pseudo-terminal",
    "state": "8 easee-tail state view in the same pseudo-terminal",
}


def run_row(row: str, tail: list[str], queue: str, url: str, ca: str, count: int,
            save_file: Path) -> Run:
    """One row's consumer on its own queue of the round."""
    say(f"  {_SAYING[row]} …")
    if row in ("baseline", "floor"):
        return run_consumer([sys.executable, "-m", f"bench.{row}", url, queue, ca, str(count)],
                            count)
    more = {"jsonl": ["--jsonl"], "save": ["--jsonl", "--save", str(save_file)],
            "metrics": ["--jsonl", "--metrics", "0"], "table": [],
            "state": ["--view", "state"]}[row]
    return run_consumer([*tail, "--queue", queue, *more], count,
                        terminal=TABLE_SIZE if row in ("table", "state") else None)


def throughput_row(
    number: int, name: str, rounds: list[dict[str, Run]], row: str, count: int, target: float,
    extra: str = "",
) -> Row:
    """The median over the rounds of each round's ratio to that round's baseline."""
    ratio = median(per_round(rounds, "baseline", row))
    rate = median([runs[row].rate(count) for runs in rounds])
    return Row(number, name, rate, ratio, f">= {target:.2f}x", ratio >= target,
               seconds_detail(rounds, row) + extra)


def floor_judged(
    number: int, name: str, rounds: list[dict[str, Run]], row: str, count: int, target: float,
    extra: str = "",
) -> Row:
    """Rows 2-4 and 8: the ratio to the floor (row 11) of the same round, their median; the
    ratio to the baseline goes in the detail."""
    judged = pair_row(number, name, rounds, row, "floor", count, target)
    to_baseline = median(per_round(rounds, "baseline", row))
    ratios = per_round(rounds, "floor", row)
    judged.detail = (seconds_detail(rounds, row) + extra
                     + f"; {spread(ratios)}; {to_baseline:.2f}x the baseline; "
                     + cpu_detail(rounds, row, "floor"))
    return judged


def cpu_detail(rounds: list[dict[str, Run]], row: str, against: str) -> str:
    """The consumers' own CPU seconds, medians: what the wall-clock ratio is made of (this
    machine's other core runs the broker, and the wall clock also counts waiting for it)."""
    mine = median([runs[row].cpu_seconds for runs in rounds])
    theirs = median([runs[against].cpu_seconds for runs in rounds])
    waits = (median([runs[row].cpu_wait_seconds for runs in rounds]),
             median([runs[against].cpu_wait_seconds for runs in rounds]))
    return (f"CPU {mine:.2f} s against {theirs:.2f} s ({theirs / mine:.2f}x), waiting for "
            f"a CPU {waits[0]:.2f} s against {waits[1]:.2f} s")


def with_cpu(row: Row, rounds: list[dict[str, Run]], name: str, against: str) -> Row:
    row.detail += f"; {cpu_detail(rounds, name, against)}"
    return row


def per_round(rounds: list[dict[str, Run]], over: str, under: str) -> list[float]:
    """Each round's seconds of the row `over` divided by those of the row `under`."""
    return [runs[over].seconds / runs[under].seconds for runs in rounds]


def spread(ratios: list[float]) -> str:
    """The rounds' own ratios, lowest to highest: how far one round is from the median."""
    return f"rounds {min(ratios):.2f}-{max(ratios):.2f}"



def pair_row(
    number: int, name: str, rounds: list[dict[str, Run]], row: str, against: str, count: int,
    target: float,
) -> Row:
    """The median over the rounds of `against`'s seconds over `row`'s, in the same round."""
    ratios = per_round(rounds, against, row)
    ratio = median(ratios)
    rate = median([runs[row].rate(count) for runs in rounds])
    return Row(number, name, rate, ratio, f">= {target:.2f}x {against}", ratio >= target,
               seconds_detail(rounds, row) + f" against {seconds_detail(rounds, against)}; "
               + spread(ratios))


def drain_row(rounds: list[dict[str, Run]], count: int) -> Row:
    """Row 12: a backlog of `count` drained with the table open, against --jsonl on the
    same backlog in the same round: the table's seconds over --jsonl's (lower is better)."""
    ratios = per_round(rounds, "table", "jsonl")
    ratio = median(ratios)
    return Row(12, f"a backlog of {count:,} drained: table seconds / --jsonl seconds", None,
               ratio, "<= 1.15x jsonl", ratio <= 1.15,
               f"table {seconds_detail(rounds, 'table')} against --jsonl "
               f"{seconds_detail(rounds, 'jsonl')}; {spread(ratios)}; "
               f"{cpu_detail(rounds, 'table', 'jsonl')}")


def redraw_bound(row: Row, rounds: list[dict[str, Run]], name: str) -> Row:
    """A table row also needs at most REDRAWS redraws a second, in every round."""
    fastest = max(runs[name].redraws_per_second for runs in rounds)
    if fastest > REDRAWS + 0.5:  # a frame's start and end may fall in one second
        row.met = False
        row.detail += f" (over {REDRAWS} redraws/s: {fastest:.1f})"
    row.target += f", <= {REDRAWS} redraws/s"
    return row


def floor_row(rounds: list[dict[str, Run]], count: int) -> Row:
    """Row 11: what decoding costs at all, and how close easee-tail --jsonl comes to it."""
    row = throughput_row(11, "floor: raw pika + easee-tail's decode and encode, no loop",
                         rounds, "floor", count, 0.0)
    within = median(per_round(rounds, "floor", "jsonl"))
    row.target, row.met = "", None
    row.detail += f"; --jsonl at {within:.2f}x of this floor"
    return row


def startup_row(floor: float, startups: dict[str, float]) -> Row:
    worst = max(startups.values()) / floor
    return Row(9, "start-up: --version, --help, completion, observations", None, worst,
               "<= 2.5x import click", worst <= 2.5,
               f"import click {floor * 1000:.0f} ms; " + ", ".join(
                   f"{name} {seconds * 1000:.0f} ms" for name, seconds in startups.items()))


def fleet_row(fleet: FleetView, table: Run, state: Run, minutes: float) -> Row:
    peak = max(table.peak_rss_mb, state.peak_rss_mb)
    slowest = max(fleet.redraw_ms.values())
    return Row(10, f"a fleet of {fleet.chargers:,} chargers, {minutes:g} min "
                   f"({fleet.records:,} records): table / state view", None, None,
               "RSS < 150 MB, redraw < 20 ms", peak < 150 and slowest < 20,
               f"peak RSS {table.peak_rss_mb:.1f} / {state.peak_rss_mb:.1f} MB; redraw "
               + ", ".join(f"{view} {ms:.1f} ms" for view, ms in fleet.redraw_ms.items()))


def seconds_detail(rounds: list[dict[str, Run]], row: str) -> str:
    return " / ".join(f"{runs[row].seconds:.2f}" for runs in rounds) + " s"


def rss_row(jsonl: Run, table: Run, count: int) -> Row:
    peak = max(jsonl.peak_rss_mb, table.peak_rss_mb)
    growth = max(jsonl.rss_growth_mb, table.rss_growth_mb)
    flat = growth < 2.0
    return Row(6, f"peak RSS over {count:,} messages (--jsonl / table)", None, None,
               "< 80 MB, flat", peak < 80 and flat,
               f"{jsonl.peak_rss_mb:.1f} MB / {table.peak_rss_mb:.1f} MB; growth after warm-up "
               f"{jsonl.rss_growth_mb:+.1f} MB / {table.rss_growth_mb:+.1f} MB")


def render(rows: list[Row], machine: dict[str, object], count: int) -> str:
    lines = [f"easee-tail benchmark: {count:,} messages, {machine['cpus']} CPUs "
             f"({machine['cpu']}), Python {machine['python']}, RabbitMQ {machine['rabbitmq']}",
             "",
             f"{'row':<4}{'what':<64}{'msg/s':>10}{'ratio':>8}  {'target':<32}{'met':<5}detail"]
    for row in rows:
        rate = f"{row.rate:,.0f}" if row.rate is not None else ""
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        met = "" if row.met is None else ("yes" if row.met else "NO")
        lines.append(f"{row.number:<4}{row.name:<64}{rate:>10}{ratio:>8}  {row.target:<32}"
                     f"{met:<5}{row.detail}")
    return "\n".join(lines)


def simulate(count: int) -> list[WireMessage]:
    start = time.time() - count / 1000
    stream = Fleet(200, seed=1).messages(start, 1000)
    return [message for _, message in itertools.islice(stream, count)]


def preload(
    broker: RabbitBroker, exchange: str, queues: list[str], messages: list[WireMessage], count: int
) -> None:
    """Publish `count` messages (cycling through `messages`) once; the fanout copies them."""
    with broker.channel() as channel:
        channel.exchange_declare(exchange, "fanout")
        for name in queues:
            channel.queue_declare(name, durable=True)
            channel.queue_bind(name, exchange)
        for message in itertools.islice(itertools.cycle(messages), count):
            channel.basic_publish(exchange, message.routing_key, message.body,
                                  pika.BasicProperties(headers=message.headers))
    deadline = time.monotonic() + 300
    while any(depth(broker, name) < count for name in queues):
        if time.monotonic() > deadline:
            raise RuntimeError("the broker did not take the messages in 5 minutes")
        time.sleep(0.5)


def delete_queue(broker: RabbitBroker, queue: str) -> None:
    with broker.channel() as channel:
        channel.queue_delete(queue)


def depth(broker: RabbitBroker, queue: str) -> int:
    with broker.channel() as channel:
        found: int = channel.queue_declare(queue, passive=True).method.message_count
        return found


def count_lines(path: Path) -> int:
    with path.open("rb") as saved:
        return sum(1 for _ in saved)


def describe_machine(broker: RabbitBroker) -> dict[str, object]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(), "cpu": model, "platform": platform.platform(),
        "python": platform.python_version(), "pika": pika.__version__,
        "rabbitmq": broker.ctl("version").strip(),
    }


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
