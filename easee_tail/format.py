"""The one place that turns values into text for people (the table and the exit summary)."""

from __future__ import annotations

from datetime import datetime

import orjson

from easee_tail.model import ErrorRecord, Record
from easee_tail.stats import Stats

MAX_VALUE_WIDTH = 80


def display_value(record: Record) -> str:
    if isinstance(record, ErrorRecord):
        return shorten(f"{shorten(record.raw, 40)}  ({record.error})")
    value = record.value
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
        text = orjson.dumps(value).decode()
    if record.label is not None:
        text = f"{text} {record.label}"
    elif record.unit is not None:
        text = f"{text} {record.unit}"
    return shorten(text)


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
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def display_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{seconds:.1f}s"


def summary(stats: Stats, elapsed: float) -> str:
    """The one paragraph printed on stderr at exit."""
    rate = stats.total / elapsed if elapsed > 0 else 0.0
    parts = [f"easee-tail: {stats.total:,} messages in {display_duration(elapsed)} ({rate:.1f}/s)"]
    if stats.errors:
        parts.append(f"{stats.errors} unreadable")
    if stats.per_charger:
        top = stats.per_charger.most_common(10)
        chargers = ", ".join(f"{charger} {count:,}" for charger, count in top)
        more = len(stats.per_charger) - len(top)
        parts.append(f"per charger: {chargers}" + (f" and {more} more" if more > 0 else ""))
    latencies = stats.run_percentiles()
    if latencies:
        parts.append("latency " + ", ".join(
            f"{name} {display_latency(value)}" for name, value in latencies.items()))
    if stats.negative_latencies:
        parts.append(f"{stats.negative_latencies} with negative latency (clock skew)")
    return "; ".join(parts) + "."
