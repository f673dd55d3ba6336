"""bench/run captures: questions to captures against jq and grep on the same file, in one run.

Row C1-C4 take the issue's capture (`easee-tail demo --jsonl --count 300000 --chargers 500
--rate 1000000 --time-scale 3600 --seed 7`, about 110 MB) and time whole processes, each
command once a round, the rounds alternating, after one untimed read that puts the file in
the page cache; a ratio is of the medians. Row C5 makes a capture of 10,000 chargers
(3,000,000 lines) and samples the memory of `sessions` and all its processes together (PSS,
so that the pages a forked worker shares with its parent count once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from statistics import median

from bench.measure import fleet_lines

RESULTS = Path(__file__).resolve().parent / "results"
FULL = {"lines": 300_000, "chargers": 500, "rounds": 5, "rss_lines": 3_000_000,
        "rss_chargers": 10_000}
QUICK = {**FULL, "lines": 100_000, "rounds": 3, "rss_lines": 600_000, "rss_chargers": 2_000}


@dataclass
class Row:
    number: str
    name: str
    seconds: float  # easee-tail's median
    against: str  # the yardstick
    yardstick_seconds: float
    ratio: float  # how many times faster easee-tail is (or, C5: MB at the peak)
    target: str
    met: bool
    detail: str = ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run captures", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="smaller captures and three rounds (a look, rougher ratios)")
    for name, meaning in (("lines", "lines of rows C1-C4's capture"),
                          ("chargers", "chargers in it"), ("rounds", "alternating rounds"),
                          ("rss-lines", "lines of row C5's capture"),
                          ("rss-chargers", "chargers in it")):
        parser.add_argument(f"--{name}", type=int,
                            help=f"{meaning} (default {FULL[name.replace('-', '_')]:,}; "
                                 f"--quick {QUICK[name.replace('-', '_')]:,})")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for name in sizes:
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    easee_tail = str(Path(sys.executable).parent / "easee-tail")
    for tool in ("jq", "grep"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            parser.error(f"{tool} is needed (apt-get install {tool})")
    work = Path(tempfile.mkdtemp(prefix="easee-bench-captures-"))
    try:
        rows = measure(easee_tail, work, sizes)
    finally:
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
    print(render(rows))
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.results / (f"{stamp}-{platform.node() or 'machine'}-captures"
                           f"{'-quick' if args.quick else ''}.json")
    path.write_text(json.dumps({"when": stamp, "quick": args.quick, "sizes": sizes,
                                "cores": len(os.sched_getaffinity(0)),
                                "rows": [asdict(row) for row in rows]}, indent=2) + "\n")
    print(f"results: {path}")
    return 0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure(easee_tail: str, work: Path, sizes: dict[str, int]) -> list[Row]:
    capture = work / "fleet.jsonl"
    say(f"making a capture of {sizes['lines']:,} lines, {sizes['chargers']} chargers …")
    with capture.open("wb") as out:
        subprocess.run([easee_tail, "demo", "--jsonl", "--count", str(sizes["lines"]),
                        "--chargers", str(sizes["chargers"]), "--rate", "1000000",
                        "--time-scale", "3600", "--seed", "7", "-q"], stdout=out, check=True)
    with capture.open("rb") as lines:
        serial = json.loads(lines.readline())["charger"]
    megabytes = capture.stat().st_size / 1e6
    say(f"{megabytes:.0f} MB; the charger asked about: {serial}")
    file = str(capture)
    commands = {
        "timeline -s": [easee_tail, "timeline", file, "-s", serial, "--json"],
        "replay -s -o": [easee_tail, "replay", file, "-s", serial, "-o", "109", "--jsonl"],
        "sessions": [easee_tail, "sessions", file, "--json"],
        "timeline": [easee_tail, "timeline", file, "--json"],
        "jq charger": ["jq", "-c", f'select(.charger=="{serial}")', file],
        "jq id": ["jq", "-c", "select(.id==109)", file],
        "grep": ["grep", "-F", serial, file],
    }
    subprocess.run(["cat", file], stdout=subprocess.DEVNULL, check=True)  # the page cache
    times: dict[str, list[float]] = {name: [] for name in commands}
    output = work / "output"
    for round_number in range(sizes["rounds"]):
        say(f"round {round_number + 1} of {sizes['rounds']} …")
        order = list(commands) if round_number % 2 == 0 else list(reversed(commands))
        for name in order:
            times[name].append(timed(commands[name], output))
    took = {name: median(spent) for name, spent in times.items()}
    rows = []
    for number, name, what in (("C1", "timeline -s", "one charger's timeline"),
                               ("C2", "replay -s -o", "replay one charger's op modes")):
        faster = took["jq charger"] / took[name]
        of_grep = took[name] / took["grep"]
        rows.append(Row(number, what, took[name], "jq select(.charger==X)",
                        took["jq charger"], faster, ">= 4x jq, within 10x of grep -F",
                        faster >= 4 and of_grep <= 10,
                        f"grep -F {took['grep']:.3f} s: easee-tail at {of_grep:.1f}x of it"))
    for number, name in (("C3", "sessions"), ("C4", "timeline")):
        faster = took["jq id"] / took[name]
        rows.append(Row(number, f"{name} of the whole capture", took[name],
                        "jq select(.id==109)", took["jq id"], faster, ">= 2x jq", faster >= 2,
                        f"{megabytes / took[name]:.0f} MB/s"))
    rows.append(memory_row(easee_tail, work, sizes))
    return rows


def timed(command: list[str], output: Path) -> float:
    """Seconds from spawn to exit, the output written to a file (GNU grep stops at its
    first match when its output is /dev/null)."""
    with output.open("wb") as out:
        began = time.perf_counter()
        subprocess.run(command, stdout=out, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - began


def memory_row(easee_tail: str, work: Path, sizes: dict[str, int]) -> Row:
    capture = work / "large.jsonl"
    say(f"making a capture of {sizes['rss_lines']:,} lines, {sizes['rss_chargers']:,} "
        "chargers …")
    fleet_lines(capture, sizes["rss_chargers"], sizes["rss_lines"])
    megabytes = capture.stat().st_size / 1e6
    say(f"{megabytes:.0f} MB; sessions of it …")
    began = time.perf_counter()
    process = subprocess.Popen([easee_tail, "sessions", str(capture), "--json"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = [0.0]
    sampler = threading.Thread(target=_tree_rss, args=(process, peak), daemon=True)
    sampler.start()
    process.wait()
    seconds = time.perf_counter() - began
    sampler.join(timeout=5)
    capture.unlink()
    return Row("C5", f"sessions of {sizes['rss_lines']:,} lines, {sizes['rss_chargers']:,} "
                     "chargers: peak memory (PSS), all its processes together", seconds, "200 MB",
               200.0, peak[0], "< 200 MB", peak[0] < 200,
               f"{peak[0]:.0f} MB at the peak; {megabytes:.0f} MB read in {seconds:.1f} s")


def _tree_rss(process: subprocess.Popen[bytes], peak: list[float]) -> None:
    """The memory of the process and its children added up, every 20 ms, the largest kept:
    their PSS (each page shared between them, as a forked worker shares its parent's,
    counted once in all, not once in each as adding up RSS would)."""
    while process.poll() is None:
        total = sum(_pss(pid) for pid in _tree(process.pid))
        peak[0] = max(peak[0], total / 1024)
        time.sleep(0.02)


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            for child in children.read().split():
                found += _tree(int(child))
    except OSError:
        pass
    return found


def _pss(pid: int) -> int:
    """kB: the process's proportional share of the pages it maps."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def render(rows: Sequence[Row]) -> str:
    out = ["row  question                                              easee-tail  yardstick"
           "                         ratio   target                          met"]
    for row in rows:
        ratio = f"{row.ratio:.0f} MB" if row.number == "C5" else f"{row.ratio:.2f}x"
        out.append(f"{row.number:<4} {row.name[:52]:<52}  {row.seconds:>8.3f} s  "
                   f"{row.against[:24]:<24} {row.yardstick_seconds:>7.3f}  {ratio:>8}   "
                   f"{row.target:<31} {'yes' if row.met else 'no'}")
        if row.detail:
            out.append(f"     {row.detail}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
