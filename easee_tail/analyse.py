"""`easee-tail timeline` and `easee-tail sessions`: a capture (--save files, or stdin) read
whole, filtered by charger and time window, and told as changes or as charging sessions.

On a terminal: text (timeline) or a table (sessions); piped, or with --json: JSON lines.
A line that is not a record is reported on stderr and skipped, as `replay` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from rich.console import Console

from easee_tail import catalogue, sessions, story
from easee_tail.environment import Environment
from easee_tail.filters import TIME_FIELDS, FilterSpec, build_filter, split_negated
from easee_tail.model import Record
from easee_tail.source.replay import open_files, read_records


@dataclass(frozen=True)
class Reading:
    """Which captures to read, and which part of them."""

    paths: tuple[str, ...]
    chargers: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    time_field: str = "device"  # the clock the window judges changes by
    as_json: bool = False


def _records(env: Environment, reading: Reading, report: Callable[[str], None]
             ) -> Iterator[Record]:
    """The chargers' whole records: the time window is applied to what they tell, so that
    a state begun before the window still says how long it held."""
    wanted, unwanted = split_negated(reading.chargers)
    keep = build_filter(FilterSpec(chargers=tuple(wanted), not_chargers=tuple(unwanted)))
    files = open_files(reading.paths or ("-",), env.stdin.buffer)
    for record in read_records(files, report):
        if keep is None or keep(record):
            yield record


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


def story_ids() -> frozenset[int]:
    """The observations a timeline can list (the states and session records)."""
    return story.story_data(catalogue.load()).states


def timeline(env: Environment, reading: Reading, listed: Sequence[int],
             report: Callable[[str], None]) -> int:
    """Print the changes; the number printed."""
    table = catalogue.load()
    field = TIME_FIELDS[reading.time_field]
    changes = [change for change in story.timeline(
        _records(env, reading, report), story.story_data(table), listed)
        if _within(reading, change.at if field == "timestamp" else getattr(change, field))]
    if reading.as_json or not env.stdout_isatty:
        _json_lines(env, (change.as_json() for change in changes))
    elif changes:
        env.stdout.write(story.timeline_text(changes) + "\n")
        env.stdout.flush()
    return len(changes)


def charging_sessions(env: Environment, reading: Reading,
                      report: Callable[[str], None]) -> int:
    """Print the sessions; the number printed."""
    table = catalogue.load()
    found = [session for session in sessions.sessions(
        _records(env, reading, report), story.story_data(table))
        if _overlaps(reading, session.start, session.stop)]
    if reading.as_json or not env.stdout_isatty:
        _json_lines(env, (session.as_json() for session in found))
    elif found:
        console = Console(file=env.stdout, no_color=env.no_color, highlight=False)
        console.print(sessions.table(found))
    return len(found)
