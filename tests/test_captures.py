"""Captures at scale: compressed and rotated --save files (a real broker, kill -9), the
readers of plain, .gz and .zst files, folders and stdin, a cut compressed tail, files that
are not captures, the whole-capture questions on every core (same bytes as on one), the
time seek, --text, and the progress bar."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import zstandard

from easee_tail.errors import ExitCode
from tests.conftest import BrokerQueue, Runner, clean_env
from tests.harness.rabbit import RabbitBroker
from tests.test_reliability import numbered


def demo_capture(cli: Runner | str, path: Path, count: int, chargers: int = 7, seed: int = 11
                 ) -> Path:
    executable = cli if isinstance(cli, str) else cli.executable
    result = subprocess.run(
        [executable, "demo", "--seed", str(seed), "--chargers", str(chargers), "--rate",
         "1000000", "--time-scale", "3600", "--count", str(count), "--save", str(path), "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=clean_env(),
        stdin=subprocess.DEVNULL, timeout=180)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory, easee_tail: str) -> Path:
    """A seeded capture of seven chargers with every kind of trouble."""
    return demo_capture(easee_tail, tmp_path_factory.mktemp("day") / "day.jsonl", 20000)


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def saved_lines(path: Path) -> tuple[list[str], bytes]:
    """The whole lines a compressed file decompresses to (as zcat/zstdcat give them, up to a
    cut), and what follows the last newline (a cut line, if any)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        decompressor: Any = __import__("zlib").decompressobj(wbits=31)
        data = b""
        while raw:
            data += decompressor.decompress(raw)
            raw = decompressor.unused_data if decompressor.eof else b""
            if decompressor.eof and raw:
                decompressor = __import__("zlib").decompressobj(wbits=31)
    else:
        reader = zstandard.ZstdDecompressor().decompressobj()
        data = reader.decompress(raw)
    whole, _newline, rest = data.rpartition(b"\n")
    return [line for line in whole.decode().split("\n") if line], rest


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_a_compressed_save_killed_at_full_speed_keeps_every_acknowledged_line(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path, suffix: str
) -> None:
    """kill -9 three times mid-stream: every line in the files is whole and decompresses,
    and what was saved plus what is still queued covers all that was published."""
    total = 20000
    queue.publish_many(numbered(0, total))
    saved: set[int] = set()
    for round_number in range(3):
        path = tmp_path / f"save{round_number}{suffix}"
        process = cli.popen("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                            "--ca-file", str(cli.certs.ca_file), "--jsonl", "--save",
                            str(path), "--prefetch", "200", stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not path.exists() or path.stat().st_size < 2000:  # the sign: lines saved
            assert time.monotonic() < deadline, "nothing was saved"
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        lines, _cut = saved_lines(path)
        assert lines, "the flushed lines decompress"
        saved |= {int(json.loads(line)["value"]) for line in lines}  # every one whole JSON
        # easee-tail reads the same file: a word on the cut, and the lines before it
        replayed = cli.run("replay", str(path), "--jsonl")
        assert replayed.returncode == 0, replayed.stderr
        assert replayed.stdout.splitlines() == lines
    left = {int(json.loads(body)["Value"]) for body in queue.drain()}
    assert saved | left >= set(range(total))


def test_a_compressed_save_is_read_by_zcat_and_zstdcat_and_never_appended_to(
    cli: Runner, tmp_path: Path
) -> None:
    for suffix, opener in ((".jsonl.gz", gzip.decompress),
                           (".jsonl.zst", zstandard.ZstdDecompressor().decompressobj()
                            .decompress)):
        path = tmp_path / f"cap{suffix}"
        plain = demo_capture(cli, tmp_path / f"plain{suffix}.jsonl", 500)
        result = cli.run("replay", str(plain), "--jsonl", "--save", str(path))
        assert result.returncode == 0, result.stderr
        assert opener(path.read_bytes()) == plain.read_bytes()
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        again = cli.run("replay", str(plain), "--jsonl", "--save", str(path))
        assert again.returncode == ExitCode.OUTPUT
        assert again.stderr.strip() == (
            f"easee-tail: error: {path} exists: a compressed capture is not appended to (a "
            "crash may have cut its last frame); give a new name, or --rotate to name files "
            "by time")


def test_rotate_by_size_starts_new_files_named_by_their_first_line_and_splits_no_line(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    queue.publish_many(numbered(0, 3000))
    folder = tmp_path / "rotated"
    folder.mkdir()
    result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", queue.name, "--ca-file",
                     str(cli.certs.ca_file), "--jsonl", "--save", str(folder / "cap.jsonl.zst"),
                     "--rotate", "20kB", "--count", "3000")
    assert result.returncode == 0, result.stderr
    files = sorted(folder.iterdir())
    assert len(files) > 3
    values = []
    for path in files:
        lines, cut = saved_lines(path)
        assert cut == b""  # each file ends with a whole line and its frame
        first = json.loads(lines[0])["received"]
        stamp = re.fullmatch(r"cap-(\d{8}T\d{6})\.(\d{6})Z(?:_\d{3})?\.jsonl\.zst", path.name)
        assert stamp is not None, path.name
        named = datetime.strptime(stamp[1] + stamp[2], "%Y%m%dT%H%M%S%f")
        assert named.strftime("%Y-%m-%dT%H:%M:%S.%f") == first.rstrip("Z")[:26]
        values += [int(json.loads(line)["value"]) for line in lines]
    assert values == list(range(3000))  # in order, none lost, none twice
    # a folder of rotated files reads as one capture, in time order
    replayed = cli.run("replay", str(folder), "--jsonl")
    assert [int(json.loads(line)["value"]) for line in replayed.stdout.splitlines()] == values


def test_rotate_by_duration_starts_a_file_per_interval(cli: Runner, tmp_path: Path) -> None:
    # 150 messages at 50 a second: seconds of them, however loaded the machine
    result = cli.run("demo", "--rate", "50", "--count", "150", "--jsonl", "-q", "--save",
                     str(tmp_path / "cap.jsonl"), "--rotate", "1s")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("cap-*.jsonl"))
    firsts = []
    for path in files:
        times = [datetime.fromisoformat(json.loads(line)["received"])
                 for line in path.read_text().splitlines()]
        assert (times[-1] - times[0]).total_seconds() < 1.0  # none holds more than 1 s
        firsts.append(times[0])
    # a file begins with the first line a second or more after the last file's first
    assert all((later - earlier).total_seconds() >= 1.0
               for earlier, later in itertools.pairwise(firsts))
    assert len(files) >= 2
    assert sum(len(path.read_text().splitlines()) for path in files) == 150 == \
        len(result.stdout.splitlines())


def test_rotate_and_its_values_are_checked(cli: Runner) -> None:
    result = cli.run("demo", "--rotate", "1h", "--count", "1")
    assert result.returncode == 2 and "--rotate goes with --save" in result.stderr
    result = cli.run("demo", "--rotate", "lots", "--save", "x.jsonl", "--count", "1")
    assert result.returncode == 2
    assert "neither a size (100MB, 1GiB) nor a duration" in result.stderr


def test_plain_gzip_zstd_folders_and_stdin_tell_the_same_story(
    cli: Runner, day: Path, tmp_path: Path
) -> None:
    expected = cli.run("timeline", str(day), "--json")
    assert expected.returncode == 0 and expected.stdout.count("\n") > 50
    data = day.read_bytes()
    (tmp_path / "day.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "day.jsonl.zst").write_bytes(zstd(data))
    folder = tmp_path / "folder"
    folder.mkdir()
    lines = data.splitlines(keepends=True)
    half = len(lines) // 2
    (folder / "cap-20260101T000000.000000Z.jsonl.zst").write_bytes(zstd(b"".join(lines[:half])))
    (folder / "cap-20260101T010000.000000Z.jsonl.gz").write_bytes(
        gzip.compress(b"".join(lines[half:])))
    for source in ("day.jsonl.gz", "day.jsonl.zst", "folder"):
        told = cli.run("timeline", str(tmp_path / source), "--json")
        assert told.returncode == 0, told.stderr
        assert told.stdout == expected.stdout, source
    piped = subprocess.run([cli.executable, "timeline", "--json"], input=zstd(data),
                           capture_output=True, env=clean_env(), timeout=60)
    assert piped.returncode == 0 and piped.stdout.decode() == expected.stdout


def test_a_cut_compressed_tail_warns_once_and_gives_everything_before_it(
    cli: Runner, day: Path, tmp_path: Path
) -> None:
    whole = cli.run("replay", str(day), "--jsonl").stdout.splitlines()
    for name, packed in (("cut.jsonl.gz", gzip.compress(day.read_bytes())),
                         ("cut.jsonl.zst", zstd(day.read_bytes()))):
        path = tmp_path / name
        path.write_bytes(packed[:len(packed) * 2 // 3])
        result = cli.run("replay", str(path), "--jsonl")
        assert result.returncode == 0, result.stderr
        got = result.stdout.splitlines()
        assert 0 < len(got) < len(whole) and got == whole[:len(got)]
        warnings = result.stderr.strip().splitlines()
        assert len(warnings) <= 2, warnings
        assert f"{path}: the " in result.stderr and "ends in the middle" in result.stderr


def test_a_file_that_is_no_capture_is_said_once_and_exits_13(
    cli: Runner, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(3 << 20))
    for command in ("replay", "timeline", "sessions"):
        result = cli.run(command, str(junk), *(["--jsonl"] if command == "replay" else []))
        assert result.returncode == ExitCode.NOT_A_CAPTURE, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) <= 6, lines
        assert "Traceback" not in result.stderr
        assert lines[-1].startswith("easee-tail: error: nothing in ")
    replayed = cli.run("replay", str(junk), "--jsonl")
    assert f"{junk}:1: skipped: not JSON" in replayed.stderr
    assert re.search(r"skipped [\d,]+ more lines that are not records \(from "
                     rf"{re.escape(str(junk))}:\d+", replayed.stderr)


def test_a_whole_capture_on_two_cores_is_the_same_to_the_byte_as_on_one(
    cli: Runner, tmp_path: Path
) -> None:
    big = demo_capture(cli, tmp_path / "big.jsonl", 110_000, chargers=300, seed=7)
    assert big.stat().st_size > 32 << 20  # large enough to be shared among the cores
    lines = big.read_bytes().split(b"\n")
    # a broken line that a story would read is told as one pass tells it
    lines.insert(5000, b'{"kind":"observation","id":109,"charger":"EH')
    big.write_bytes(b"\n".join(lines))
    for command in ("sessions", "timeline"):
        both = subprocess.run([cli.executable, command, str(big), "--json"],
                              capture_output=True, env=clean_env(), timeout=120)
        one = subprocess.run([cli.executable, command, str(big), "--json"],
                             capture_output=True, env=clean_env(), timeout=120,
                             preexec_fn=lambda: os.sched_setaffinity(0, {0}))
        assert both.returncode == one.returncode == 0, both.stderr
        assert both.stdout == one.stdout and both.stdout.count(b"\n") > 100
        assert both.stderr == one.stderr
        assert b"big.jsonl:5001: skipped: not JSON" in both.stderr, both.stderr
    # Ctrl-C reaches the whole group, workers too: one clean end, 130, no traceback; even
    # when started with SIGINT ignored, as a shell without job control starts `cmd &`
    process = subprocess.Popen([cli.executable, "sessions", str(big), "--json"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=clean_env(), start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + 60
    while not (children.exists() and children.read_text().split()):  # the sign: workers
        assert process.poll() is None and time.monotonic() < deadline, "no workers started"
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)
    _out, stderr = process.communicate(timeout=30)
    assert process.returncode == ExitCode.INTERRUPTED, stderr
    assert b"Traceback" not in stderr and b"KeyboardInterrupt" not in stderr


def test_since_on_a_replay_enters_the_file_where_the_window_begins(
    cli: Runner, day: Path, tmp_path: Path
) -> None:
    """Lines before the window are not read: a corrupt line there is never reported."""
    lines = day.read_text().splitlines()
    middle = json.loads(lines[len(lines) * 3 // 4])["received"]
    damaged = lines[:1] + ["garbage{"] * 3 + lines[1:]
    path = tmp_path / "damaged.jsonl"
    path.write_text("\n".join(damaged) + "\n")
    result = cli.run("replay", str(path), "--jsonl", "--since", middle, "--time-field",
                     "received")
    assert result.returncode == 0, result.stderr
    expected = [line for line in lines if json.loads(line)["received"] >= middle]
    assert result.stdout.splitlines() == expected
    assert "skipped" not in result.stderr
    everything = cli.run("replay", str(path), "--jsonl")
    assert everything.stderr.count("skipped: not JSON") == 3


def test_text_gives_the_terminal_layout_in_a_pipe(cli: Runner, day: Path) -> None:
    timeline = cli.run("timeline", str(day), "--text")
    assert timeline.returncode == 0, timeline.stderr
    assert "\x1b" not in timeline.stdout and not timeline.stdout.startswith("{")
    assert re.search(r"^EH\w{6}  \d+ changes$", timeline.stdout, re.MULTILINE)
    assert "ChargerOpMode" in timeline.stdout and "(was " in timeline.stdout
    sessions = cli.run("sessions", str(day), "--text")
    assert sessions.returncode == 0, sessions.stderr
    assert sessions.stdout.split()[:3] == ["charger", "id", "start"]
    assert "how it ended" in sessions.stdout.splitlines()[0] and "\x1b" not in sessions.stdout
    both = cli.run("sessions", str(day), "--text", "--json")
    assert both.returncode == 2 and "--json and --text contradict" in both.stderr


def test_a_progress_bar_is_drawn_on_a_terminal_and_never_in_a_pipe(
    cli: Runner, tmp_path: Path
) -> None:
    big = demo_capture(cli, tmp_path / "big.jsonl", 110_000, chargers=300, seed=3)
    import pty
    leader, follower = pty.openpty()
    with open(os.devnull, "wb") as sink:
        process = subprocess.Popen([cli.executable, "sessions", str(big), "--json"],
                                   stdout=sink, stderr=follower, stdin=subprocess.DEVNULL,
                                   env=clean_env())
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process is gone and the terminal with it
            break
        if not chunk:
            break
        drawn += chunk
    assert process.wait(timeout=120) == 0
    os.close(leader)
    assert b"reading" in drawn and b"MB" in drawn, drawn[:400]
    piped = cli.run("sessions", str(big), "--json")
    assert piped.returncode == 0 and piped.stderr == ""
