"""`easee-tail timeline` and `easee-tail sessions`: captures read (see reader.py: only the
lines a story reads are parsed, and a large file on every core, split.py), filtered by
charger and time window, and told as changes or as charging sessions.

On a terminal: text (timeline) or a table (sessions); piped, or with --json: JSON lines;
--text: the terminal's layout without colour, for a pager or a file. A line that is not a
record is reported on stderr and skipped, as `replay` does; input in which nothing at all
is a record ends with exit code 13.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import click
import orjson

from easee_tail import catalogue
from easee_tail.captures import split, story
from easee_tail.captures.files import open_captures
from easee_tail.captures.progress import progress
from easee_tail.captures.reader import Reader, Sieve
from easee_tail.environment import Environment
from easee_tail.errors import EaseeTailError, ExitCode
from easee_tail.filters import TIME_FIELDS, FilterSpec, build_filter, split_negated

if TYPE_CHECKING:
    from easee_tail.reporter import Reporter


@dataclass(frozen=True)
class Reading:
    """Which captures to read, which part of them, and how to tell what is found."""

    paths: tuple[str, ...]
    chargers: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    time_field: str = "device"  # the clock the window judges changes by
    as_json: bool = False
    as_text: bool = False


def _ask(env: Environment, reading: Reading, data: story.StoryData,
         report: Callable[[str], None], until_ends_reading: bool,
         tell: Callable[[split.Kept], list[split.T]]) -> list[split.T]:
    """`tell` applied to the chargers' whole records of what a story reads: the time window
    is applied to what they tell, so that a state begun before the window still says how
    long it held (so --since reads from the start; --until, where it ends what is told,
    ends the reading)."""
    wanted, unwanted = split_negated(reading.chargers)
    keep = build_filter(FilterSpec(chargers=tuple(wanted), not_chargers=tuple(unwanted)))
    # only a window on the received clock ends the reading: a record can come any time
    # after its charger's or the cloud's moment (a backlog, a replay of old values)
    until = reading.until.timestamp() if reading.until and until_ends_reading \
        and reading.time_field == "received" else None
    captures = open_captures(reading.paths or ("-",), env.stdin.buffer)
    with progress(env, captures, "reading") as advance:
        reader = Reader(captures, Sieve(tuple(wanted), data.read, None, until, unnamed=False),
                        report,
                        advance)
        try:
            told = split.answer(reader, keep, data, tell, _drawing if advance else None)
        finally:
            reader.finish()
    reader.check()
    return told


def _drawing(ready: Callable[[float], bool]) -> None:
    while not ready(0.1):  # the bar is redrawn by rich meanwhile
        time.sleep(0)


def _within(reading: Reading, moment: datetime | None) -> bool:
    if moment is None:
        return reading.since is None and reading.until is None
    return (reading.since is None or moment >= reading.since) and \
        (reading.until is None or moment <= reading.until)


def _overlaps(reading: Reading, start: datetime | None, stop: datetime | None) -> bool:
    """A session that ran at some moment of the window (one still open runs on)."""
    return (reading.since is None or stop is None or stop >= reading.since) and \
        (reading.until is None or start is None or start <= reading.until)


def _json_lines(env: Environment, documents: Iterator[dict[str, object]]) -> None:
    out = env.stdout_bytes
    env.stdout.flush()
    for document in documents:
        out.write(orjson.dumps(document, default=str) + b"\n")
    out.flush()


def _as_json(env: Environment, reading: Reading) -> bool:
    return reading.as_json or (not reading.as_text and not env.stdout_isatty)


def story_ids() -> frozenset[int]:
    """The observations a timeline can list (the states and session records)."""
    return story.story_data(catalogue.load()).states


def timeline(env: Environment, reading: Reading, listed: list[int],
             report: Callable[[str], None]) -> int:
    """Print the changes; the number printed."""
    data = story.story_data(catalogue.load())
    field = TIME_FIELDS[reading.time_field]
    # --until ends the reading where the clock it judges follows the receive order
    told = _ask(env, reading, data, report, True,
                lambda found: story.timeline(found, data, listed))
    changes = [change for change in told
               if _within(reading, change.at if field == "timestamp" else getattr(change, field))]
    if _as_json(env, reading):
        _json_lines(env, (change.as_json() for change in changes))
    elif changes:
        env.stdout.write(story.timeline_text(changes) + "\n")
        env.stdout.flush()
    return len(changes)


def charging_sessions(env: Environment, reading: Reading,
                      report: Callable[[str], None]) -> int:
    """Print the sessions; the number printed."""
    from rich.console import Console

    from easee_tail.captures import sessions
    data = story.story_data(catalogue.load())
    # a session running at --until ends after it: read on to the end
    found = [session for session in _ask(env, reading, data, report, False,
                                         lambda kept: sessions.sessions(kept, data))
             if _overlaps(reading, session.start, session.stop)]
    if _as_json(env, reading):
        _json_lines(env, (session.as_json() for session in found))
    elif found:
        plain = reading.as_text and not env.stdout_isatty
        console = Console(file=env.stdout, no_color=env.no_color or plain, highlight=False,
                          color_system=None if plain else "auto",
                          width=None if env.stdout_isatty else 160)
        if not plain:
            console.print(sessions.table(found))
        else:  # into a file or a pager: the layout without the padding to 160 columns
            with console.capture() as drawn:
                console.print(sessions.table(found))
            env.stdout.write("".join(line.rstrip() + "\n"
                                     for line in drawn.get().splitlines()))
            env.stdout.flush()
    return len(found)


def _capture_paths(env: Environment, paths: tuple[str, ...], as_json: bool, as_text: bool
                   ) -> tuple[str, ...]:
    if as_json and as_text:
        raise click.UsageError("--json and --text contradict each other: give one")
    if not paths and env.stdin_isatty:
        raise click.UsageError("give a FILE (or - and pipe JSON lines in)")
    return paths


def timeline_command(paths: tuple[str, ...], chargers: tuple[str, ...],
             observations: tuple[tuple[int, ...], tuple[int, ...]], since: datetime | None,
             until: datetime | None, time_field: str, as_json: bool, as_text: bool) -> None:
    from easee_tail.reporter import Reporter
    reporter = Reporter(Environment.from_process())
    wanted, unwanted = observations
    listed = [number for number in (wanted or sorted(story_ids()))
              if number not in unwanted]
    reading = Reading(_capture_paths(reporter.env, paths, as_json, as_text), chargers, since,
                      until, time_field, as_json, as_text)
    _asking(reporter, lambda: timeline(reporter.env, reading, listed, reporter.warn))


def sessions_command(paths: tuple[str, ...], chargers: tuple[str, ...], since: datetime | None,
             until: datetime | None, as_json: bool, as_text: bool) -> None:
    from easee_tail.reporter import Reporter
    reporter = Reporter(Environment.from_process())
    reading = Reading(_capture_paths(reporter.env, paths, as_json, as_text), chargers, since,
                      until, as_json=as_json, as_text=as_text)
    _asking(reporter, lambda: charging_sessions(reporter.env, reading, reporter.warn))


def _asking(reporter: Reporter, question: Callable[[], object]) -> None:
    """A question's one-line end: an error with its code; Ctrl-C (nothing printed yet, the
    answer comes whole at the end) with 130, as a run ends."""
    # Ctrl-C stops a question however it was started, as it stops a tail: a shell without
    # job control starts `cmd &` with SIGINT ignored, and Python then leaves it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        question()
    except EaseeTailError as problem:
        reporter.fail(problem.message, problem.exit_code)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
