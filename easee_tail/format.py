"""The one place that turns values into text for people (the table and the exit summary)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from itertools import pairwise

import orjson

from easee_tail.model import ErrorRecord, Record
from easee_tail.stats import HISTOGRAM_EDGES, Stats
from easee_tail.text import plural, visible
from easee_tail.times import CLOCK_SKEW_MS

MAX_VALUE_WIDTH = 80


def display_value(record: Record) -> str:
    if isinstance(record, ErrorRecord):
        return shorten(f"{shorten(record.raw, 40)}  ({record.error})")
    return value_text(record.value, record.label, record.unit)


def value_text(value: object, label: str | None, unit: str | None,
               width: int = MAX_VALUE_WIDTH) -> str:
    """A value for people: with its enum label, else its unit; shortened to `width`."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "NaN"
    elif isinstance(value, str):
        text = value
    elif value is None:
        text = "null"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = compact_json(value)
    if label is not None:
        text = f"{text} {label}"
    elif unit is not None:
        text = f"{text} {unit}"
    return shorten(text, width)


def display_latency(latency_ms: float | None) -> str:
    if latency_ms is None:
        return "–"
    if abs(latency_ms) < 1000:
        return f"{latency_ms:.0f} ms"
    if abs(latency_ms) < 120_000:
        return f"{latency_ms / 1000:.1f} s"
    return f"{latency_ms / 60_000:.0f} min"


def latency_style(latency_ms: float | None) -> str:
    if latency_ms is None:
        return "dim"
    if latency_ms < 0:
        return "magenta"
    if latency_ms < 1000:
        return "green"
    if latency_ms < 5000:
        return "yellow"
    return "red"


def display_time(moment: datetime) -> str:
    """Local wall-clock time with milliseconds: what a person compares with their watch."""
    return moment.astimezone().strftime("%H:%M:%S.%f")[:-3]


def display_ago(seconds: float) -> str:
    if seconds < 1:
        return "just now"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def shorten(text: str, width: int = MAX_VALUE_WIDTH) -> str:
    text = visible(text.replace("\n", " ").replace("\r", " "))
    return text if len(text) <= width else text[: width - 1] + "…"


def compact_json(value: object) -> str:
    """A value as one line of JSON text, for people; never fails."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):  # integers beyond 64 bits, say
        try:
            return json.dumps(value, default=repr, ensure_ascii=False)
        except (ValueError, RecursionError):
            return repr(value)[:1000]


def display_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{seconds:.1f}s"


def summary(stats: Stats, elapsed: float, width: int = 80) -> str:
    """What is printed on stderr at exit: totals, latency percentiles and a histogram."""
    rate = stats.total / elapsed if elapsed > 0 else 0.0
    shown = " shown" if stats.tally is not None else ""
    first = (f"easee-tail: {plural(stats.total, 'message')}{shown} in "
             f"{display_duration(elapsed)} ({rate:.1f}/s)")
    if stats.errors:
        first += f", {stats.errors:,} unreadable"
    if stats.redelivered:
        first += f", {stats.redelivered:,} redelivered"
    lines = [first]
    if stats.stale or stats.repeated:
        lines.append(f"  sent again:      {stats.stale:,} stale, {stats.repeated:,} repeated "
                     "(old values the cloud sent again: no change)")
    tally = stats.tally
    if tally is not None:
        lines.append(f"  filtered:        {tally.filtered:,} of {plural(tally.received, 'message')} "
                     f"received did not match ({visible(tally.filters)}) and were {tally.fate}")
    if stats.per_charger:
        lines.extend(_wrapped("per charger:", stats.per_charger, width))
    if stats.per_observation:
        lines.extend(_wrapped("per observation:", stats.per_observation, width))
    latencies = stats.run_percentiles()
    if latencies:
        lines.append("  latency:         " + ", ".join(
            f"{name} {display_latency(value)}" for name, value in latencies.items()))
        lines.extend(histogram_lines(stats.histogram, width))
    if stats.negative_latencies > stats.skewed:
        lines.append(f"  {stats.negative_latencies - stats.skewed:,} with negative latency: "
                     "the clocks of the Easee cloud and this machine disagree a little")
    if stats.skewed:
        lines.append(f"  {stats.skewed:,} with ArrivalTime over {CLOCK_SKEW_MS / 1000:.0f} s "
                     "ahead of this machine's clock: this clock is behind (not counted as "
                     "latency)")
    return "\n".join(lines)


def _wrapped(title: str, counts: Counter[str], width: int, shown: int = 20) -> list[str]:
    """`name count` pairs, the busiest first, wrapped under the title without splitting one."""
    top = counts.most_common(shown)
    pieces = [f"{visible(name)} {count:,}," for name, count in top]
    pieces[-1] = pieces[-1].rstrip(",")
    if len(counts) > len(top):
        pieces.append(f"and {len(counts) - len(top)} more")
    lines: list[str] = []
    line, empty = f"  {title:<17}", True
    for piece in pieces:
        if not empty and len(line) + 1 + len(piece) > max(40, width - 1):
            lines.append(line)
            line, empty = " " * 19, True
        line += piece if empty else " " + piece
        empty = False
    return [*lines, line]


def _edge(ms: int) -> tuple[str, str]:
    if ms < 1000:
        return f"{ms}", "ms"
    if ms < 60_000:
        return f"{ms / 1000:g}", "s"
    return f"{ms / 60_000:g}", "min"


def histogram_lines(counts: list[int], width: int = 80) -> list[str]:
    """The latency histogram, a bar per bucket from the first non-empty to the last."""
    used = [number for number, count in enumerate(counts) if count]
    if not used:
        return []
    edges = HISTOGRAM_EDGES
    names = ["≤ 0 ms"]
    for low, high in pairwise(edges):
        (low_number, low_unit), (high_number, high_unit) = _edge(low), _edge(high)
        names.append(f"{low_number}–{high_number} {high_unit}" if low_unit == high_unit
                     else f"{low_number} {low_unit}–{high_number} {high_unit}")
    names.append("> {} {}".format(*_edge(edges[-1])))
    total = sum(counts)
    peak = max(counts)
    bar_width = max(10, min(40, width - 40))
    lines = ["  latency histogram:"]
    for number in range(used[0], used[-1] + 1):
        count = counts[number]
        bar = "█" * round(count / peak * bar_width) if count else ""
        lines.append(f"  {names[number]:>13} │{bar:<{bar_width}} {count:>9,} "
                     f"{count / total:>6.1%}")
    return lines

def display_state_value(value: object, label: str | None, unit: str | None) -> str:
    """The short form for the state view: the label alone when there is one."""
    return shorten(label, 32) if label is not None else value_text(value, None, unit, 32)


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Iterable[float]) -> str:
    """Recent values as bars scaled between their own minimum and maximum (finite ones)."""
    values = [value for value in values if math.isfinite(value)]
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return _BARS[3] * len(values)
    scale = (len(_BARS) - 1) / (high - low)
    return "".join(_BARS[round((value - low) * scale)] for value in values)
