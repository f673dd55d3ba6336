"""A progress bar on stderr for long offline work (bytes of the files read of their total,
rate, time left), drawn by rich, only when stderr is a terminal and the size is known."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

from easee_tail.captures.files import Capture
from easee_tail.environment import Environment

Advance = Callable[[int], None]


@contextlib.contextmanager
def progress(env: Environment, captures: Sequence[Capture], what: str
             ) -> Iterator[Advance | None]:
    """An `advance(bytes)` for the reader while the bar is up; None (no bar) off a terminal
    or when a size is unknown (stdin)."""
    sizes = [capture.size for capture in captures]
    if not env.stderr_isatty or any(size is None for size in sizes):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    console = Console(file=env.stderr, no_color=env.no_color, highlight=False)
    bar = Progress(TextColumn(what), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), console=console, transient=True)
    task = bar.add_task(what, total=sum(size or 0 for size in sizes))
    with bar:
        yield lambda count: bar.advance(task, count)
