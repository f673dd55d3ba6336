"""`easee-tail replay`: a --save capture through the same filters and sinks, no broker."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime
from pathlib import Path

from tests.conftest import Runner, clean_env


def capture(cli: Runner, tmp_path: Path, count: int = 300, rate: str = "3000") -> Path:
    path = tmp_path / "capture.jsonl"
    result = cli.run("demo", "--rate", rate, "--count", str(count), "--seed", "5",
                     "--save", str(path), "--jsonl")
    assert result.returncode == 0, result.stderr
    return path


def test_replay_reproduces_a_capture_line_for_line(cli: Runner, tmp_path: Path) -> None:
    path = capture(cli, tmp_path)
    result = cli.run("replay", str(path), "--jsonl")
    assert result.returncode == 0, result.stderr
    assert result.stdout == path.read_text()


def test_replay_filters_and_reads_stdin(cli: Runner, tmp_path: Path) -> None:
    path = capture(cli, tmp_path)
    expected = [line for line in path.read_text().splitlines()
                if json.loads(line)["id"] == 109]
    result = subprocess.run([cli.executable, "replay", "--obs", "ChargerOpMode"],
                            stdin=path.open("rb"), capture_output=True, env=clean_env(),
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == expected and expected


def test_corrupt_lines_are_reported_with_their_number_and_skipped(
    cli: Runner, tmp_path: Path
) -> None:
    path = capture(cli, tmp_path, count=5)
    lines = path.read_text().splitlines()
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("\n".join([lines[0], "garbage{", lines[1], '{"kind": "observation"}',
                                  lines[2][:40], *lines[3:]]) + "\n")
    result = cli.run("replay", str(damaged), "--jsonl")
    assert result.returncode == 0
    assert f"{damaged}:2: skipped: not JSON" in result.stderr
    assert f"{damaged}:4: skipped: not an easee-tail record" in result.stderr
    assert f"{damaged}:5: skipped" in result.stderr
    assert result.stdout.splitlines() == [lines[0], lines[1], *lines[3:]]


def test_speed_keeps_the_original_pace_scaled(cli: Runner, tmp_path: Path) -> None:
    path = capture(cli, tmp_path, count=30, rate="20")  # a second or two of traffic
    received = [datetime.fromisoformat(json.loads(line)["received"])
                for line in path.read_text().splitlines()]
    span = (received[-1] - received[0]).total_seconds()
    assert span > 0.5
    began = time.monotonic()
    result = cli.run("replay", str(path), "--jsonl", "--speed", "2")
    paced = time.monotonic() - began
    assert result.returncode == 0 and result.stdout == path.read_text()
    assert paced >= span / 2 * 0.9  # the original pace between first and last line, halved


def test_replay_without_input_on_a_terminal_is_a_usage_error(cli: Runner) -> None:
    missing = cli.run("replay", "/nonexistent.jsonl")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
