"""The benchmark's smoke run: python -m bench (what bench/run runs), small, prints its rows and
writes its JSON.

Only that it runs: no figure is asserted, because timings belong to the machine.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parent.parent


def test_bench_run_prints_every_row_and_writes_json(tmp_path: Path) -> None:
    result = subprocess.run(
        # python -m bench, not bench/run: the suite uses the environment it was given and
        # installs nothing mid-run (bench/run would run scripts/setup first)
        [sys.executable, "-m", "bench", "--quick", "--messages", "1500", "--rss-messages", "2000",
         "--latency-rate", "200", "--latency-seconds", "1", "--rounds", "1",
         "--fleet-chargers", "40", "--fleet-minutes", "3", "--startup-runs", "1",
         "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=clean_env(), cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.splitlines()
    header = next(line for line in table if line.startswith("row"))
    assert "msg/s" in header and "ratio" in header
    rows = [line for line in table if line[:1].isdigit()]
    assert [line.split()[0] for line in rows] == [str(number) for number in range(1, 14)]
    assert "1,500 lines saved" in rows[2]
    assert "redraws/s" in rows[3]
    # judged rows show the rounds' spread and what the wall clock is made of
    for judged in (rows[3], rows[11], rows[12]):
        assert re.search(r"rounds \d\.\d\d-\d\.\d\d", judged), judged
        assert re.search(r"CPU [\d.]+ s against [\d.]+ s \([\d.]+x\), waiting for a CPU "
                         r"[\d.]+ s against [\d.]+ s", judged), judged
    assert "p99" in rows[6]
    assert "--view state" in rows[7] and "redraws/s" in rows[7]
    assert "import click" in rows[8] and "observations" in rows[8]
    assert "a fleet of 40 chargers" in rows[9] and "peak RSS" in rows[9]
    assert "timeline" in rows[9]
    assert "of this floor" in rows[10]
    assert ">= 0.97x floor" in rows[1] and "x the baseline" in rows[1]  # judged by the floor
    assert "drained" in rows[11] and "<= 1.15x jsonl" in rows[11]
    assert "--metrics" in rows[12] and ">= 0.95x jsonl" in rows[12]

    [written] = list(tmp_path.glob("*.json"))
    assert written.name.endswith("-quick.json")  # told apart from full runs
    result_json = json.loads(written.read_text())
    assert result_json["quick"] is True
    assert [row["number"] for row in result_json["rows"]] == list(range(1, 14))
    assert result_json["messages"] == 1500
    assert all(row["rate"] > 0 for row in result_json["rows"][:5])
    assert result_json["machine"]["rabbitmq"]


def test_bench_captures_prints_every_row_and_writes_json(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.captures", "--lines", "3000", "--chargers", "20",
         "--rounds", "1", "--rss-lines", "3000", "--rss-chargers", "50",
         "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=clean_env(), cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("C")]
    assert rows == ["C1", "C2", "C3", "C4", "C5"]
    saved = json.loads(next(tmp_path.glob("*-captures.json")).read_text())
    assert [row["number"] for row in saved["rows"]] == rows
    assert all(row["seconds"] > 0 and row["yardstick_seconds"] > 0 for row in saved["rows"])
