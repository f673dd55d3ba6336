"""Single key presses from the terminal, read without blocking and without echo.

Used while the live table runs (`v` switches views). The terminal keeps generating signals
(Ctrl-C stays SIGINT); its settings are put back on close, whatever ended the run.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import tty
from typing import Any, TextIO


class Keys:
    def __init__(self, stdin: TextIO) -> None:
        self._fd = stdin.fileno()
        self._saved: list[Any] | None = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd, termios.TCSANOW)  # no line buffering, no echo; ISIG kept

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
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None
