"""Single key presses from the terminal, read without blocking and without echo.

Used while the live table runs (`v` switches views). The terminal keeps generating signals
(Ctrl-C stays SIGINT); its settings are put back on close, whatever ended the run.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import termios
import tty
from collections.abc import Iterator
from typing import Any, TextIO


class Keys:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._saved: list[Any] | None = termios.tcgetattr(fd)
        with _no_sigttou():
            tty.setcbreak(fd, termios.TCSANOW)  # no line buffering, no echo; ISIG kept

    @classmethod
    def open(cls, stdin: TextIO) -> Keys | None:
        """Keys from the terminal on stdin, or None when there is none that is ours to use."""
        try:
            fd = stdin.fileno()
            if os.tcgetpgrp(fd) != os.getpgrp():
                return None  # started in the background (`&`): the terminal is the shell's
            return cls(fd)
        except (OSError, termios.error, ValueError):
            return None

    def read(self) -> str:
        """The keys pressed since the last call ("" for none)."""
        if self._saved is None or not select.select([self._fd], [], [], 0)[0]:
            return ""
        try:
            return os.read(self._fd, 64).decode(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        if self._saved is not None:
            with contextlib.suppress(termios.error, OSError), _no_sigttou():
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None


@contextlib.contextmanager
def _no_sigttou() -> Iterator[None]:
    """Changing the terminal's mode from a background job (after Ctrl-Z, `bg`) would stop
    the process with SIGTTOU; with the signal ignored the change just happens."""
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTTOU, previous)
