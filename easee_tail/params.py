"""Parameter types for values people type: durations with units, finite numbers.

A duration is `90` (seconds), `90s`, `500ms`, `5m`, `1h30m`, `2d`; NaN, infinities, zero
and negatives are usage errors, as is any number that is not finite.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `1h30m` and the like; ValueError for anything else."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not _WHOLE.fullmatch(text):
        raise ValueError(text)
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.5 on
    """Seconds, typed with or without units."""

    name = "duration"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum  # the value must be above it

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> float:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a duration", param, ctx)
        try:
            seconds = float(value) if isinstance(value, int | float) \
                else parse_duration(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a duration (90, 90s, 500ms, 5m, 1h30m, 2d)",
                      param, ctx)
        if not math.isfinite(seconds) or seconds <= self.minimum:
            self.fail(f"{value!r} must be a finite duration above "
                      f"{self.minimum:g} s", param, ctx)
        return seconds

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DURATION"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGT]i?B|B)\s*$")
_SIZE_UNITS = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KiB": 2**10, "kiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


class Rotate(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.5 on
    """--rotate: a size with its unit (100MB, 1GiB) or a duration (1h): (bytes, seconds),
    one of them None."""

    name = "rotate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> tuple[int | None, float | None]:
        if isinstance(value, tuple):
            return value
        text = str(value)
        size = _SIZE.match(text)
        if size is not None:
            number, unit = size.groups()
            if unit not in _SIZE_UNITS:
                self.fail(f"{text!r}: give the size's unit as B, kB, MB, GB, KiB, MiB or GiB",
                          param, ctx)
            count = int(float(number) * _SIZE_UNITS[unit])
            if count < 4096:
                self.fail(f"{text!r} is too small for a file of lines (4 kB at least)", param,
                          ctx)
            return count, None
        try:
            seconds = parse_duration(text)
        except ValueError:
            self.fail(f"{text!r} is neither a size (100MB, 1GiB) nor a duration (1h, 30m)",
                      param, ctx)
        if not math.isfinite(seconds) or seconds < 1:
            self.fail(f"{text!r} must be a second or longer", param, ctx)
        return None, seconds

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "SIZE|DURATION"


class ListenAddress(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.5 on
    """Where a server listens: PORT (on loopback), HOST:PORT, or [IPv6]:PORT, as
    (host, port); port 0 lets the system choose."""

    name = "address"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        host, colon, port = text.rpartition(":")
        if not colon:
            host, port = "127.0.0.1", text
        elif host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif not host:
            self.fail(f"{text!r}: name the host, 127.0.0.1:{port} (this machine only) or "
                      f"0.0.0.0:{port} (every interface)", param, ctx)
        if not host or (":" in host and not text.startswith("[")):
            self.fail(f"{text!r} is not HOST:PORT (an IPv6 address goes in brackets: "
                      "[::1]:9464)", param, ctx)
        if not port.isdigit() or int(port) > 65535:
            self.fail(f"{text!r}: the port must be a number from 0 to 65535", param, ctx)
        return host, int(port)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[HOST:]PORT"


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses NaN and the infinities (which pass its comparisons
    or its bounds in ways that mean nothing)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """An aware UTC datetime from ISO 8601 (without an offset: local time), a local clock
    time today (`14:02`, `14:02:30`), or a duration ago (`2h`, `90m`); ValueError else."""
    now = now or datetime.now(UTC)
    text = text.strip()
    clock = _CLOCK.fullmatch(text)
    if clock:
        hour, minute, second = (int(part or 0) for part in clock.groups())
        local = now.astimezone().replace(hour=hour, minute=minute, second=second,
                                         microsecond=0)
        return local.astimezone(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return now - timedelta(seconds=parse_duration(text))
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as a person types it
    return moment.astimezone(UTC)


class Moment(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.5 on
    """A point in time: ISO 8601, a clock time today, or a duration ago."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_moment(str(value))
        except (ValueError, OverflowError):
            self.fail(f"{value!r} is not a time: ISO 8601 (2026-11-26T14:02:00Z), a clock "
                      "time today (14:02), or a duration ago (2h)", param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "TIME"
