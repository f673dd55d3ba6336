"""The one time parser: ArrivalTime and Timestamp values in every form they arrive in."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

_DOTNET_EPOCH_TICKS = 621_355_968_000_000_000  # .NET ticks at 1970-01-01T00:00:00Z
_TICKS_THRESHOLD = 6e17  # smaller than any .NET tick count of this millennium
_MILLIS_THRESHOLD = 1e11  # as seconds that is the year 5138; as milliseconds, 1973
# ArrivalTime this far (ms) ahead of the local clock is the local clock behind, not a message
# from the future: noted, counted apart, and kept out of the latencies
CLOCK_SKEW_MS = 2000.0


def parse_time(value: object) -> datetime | None:
    """An aware UTC datetime, or None when the value cannot be read as a time.

    Accepts ISO-8601 text (with or without offset, up to 7 fraction digits), AMQP
    timestamps (pika gives naive UTC datetimes), epoch seconds or milliseconds and
    .NET ticks (numbers or numeric text, told apart by magnitude).
    """
    if type(value) is str:  # the usual ArrivalTime and Timestamp: ISO text in UTC, "Z"
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return _parse_text(value.strip())
        if parsed.tzinfo is UTC:
            return parsed
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str):
        return _parse_text(value.strip())
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        try:
            return _from_number(float(value))
        except (ValueError, OverflowError):  # a signalling NaN; an int beyond any float
            return None
    return None


def _parse_text(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            return _from_number(float(text))
        except ValueError:
            return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _from_number(number: float) -> datetime | None:
    if number != number or number in (float("inf"), float("-inf")):
        return None
    if abs(number) >= _TICKS_THRESHOLD:
        seconds = (number - _DOTNET_EPOCH_TICKS) / 1e7
    elif abs(number) >= _MILLIS_THRESHOLD:
        seconds = number / 1000
    else:
        seconds = number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def span(seconds: float) -> str:
    """How long something lasted, to the two units that matter: `2d 3h`, `1h 0m`, `5m 3s`,
    `12s`, `0.4s`."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
