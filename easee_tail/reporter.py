"""What a command says on stderr, and how it stops: informational lines (which -q silences),
warnings, errors (then the exit code), and news from a running pipeline, printed above the
live table when there is one. Every line has its secrets masked and its control characters
made visible. The signal handling of the run (StopRequest) is kept here too.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NoReturn, Protocol

import click

from easee_tail.environment import Environment
from easee_tail.errors import SECRETS, ExitCode
from easee_tail.options import QUIET
from easee_tail.pipeline import StopRequest
from easee_tail.text import visible

if TYPE_CHECKING:
    from rich.console import Console


_DIM, _YELLOW, _RED = "2", "33", "31"  # SGR codes


class Board(Protocol):
    def notice(self, text: str) -> None: ...


class Reporter:
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.redact = SECRETS
        self.stop = StopRequest()
        self.table: Board | None = None  # the live table while one is up
        ctx = click.get_current_context(silent=True)
        self.quiet = bool(ctx and ctx.find_root().meta.get(QUIET))
        self._stderr: Console | None = None

    @property
    def stderr(self) -> Console:
        """A rich console on stderr, for what is drawn there (the exit summary)."""
        if self._stderr is None:
            from rich.console import Console
            self._stderr = Console(file=self.env.stderr, no_color=self.env.no_color,
                                   highlight=False, soft_wrap=True, markup=False)
        return self._stderr

    def _say(self, text: str, colour: str) -> None:
        """One line on stderr: in colour on a terminal (unless NO_COLOR), plain elsewhere.
        Plain writes: a JSON lines run never loads rich for its few lines."""
        env = self.env
        if not env.no_color and (env.stderr_isatty or os.environ.get("FORCE_COLOR")):
            text = f"\x1b[{colour}m{text}\x1b[0m"
        env.stderr.write(text + "\n")
        env.stderr.flush()

    def notice(self, message: str) -> None:
        """News from a running pipeline (reconnecting, reconnected): above the table when
        there is one, else a line on stderr."""
        if self.table is not None:
            self.table.notice(f"easee-tail: {visible(self.redact(message))}")
        else:
            self.info(message)

    def alarm(self, message: str) -> None:
        """A warning from a running pipeline (an alert, the clock): above the table when
        there is one, else a warning line; never silenced by -q."""
        if self.table is not None:
            self.table.notice(f"easee-tail: warning: {visible(self.redact(message))}")
        else:
            self.warn(message)

    def info(self, message: str) -> None:
        if self.quiet:
            return
        self._say(f"easee-tail: {visible(self.redact(message))}", _DIM)

    def warn(self, message: str) -> None:
        self._say(f"easee-tail: warning: {visible(self.redact(message))}", _YELLOW)

    def fail(self, message: str, code: ExitCode) -> NoReturn:
        self._say(f"easee-tail: error: {visible(self.redact(message))}", _RED)
        sys.exit(code)
