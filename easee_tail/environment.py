"""The process's streams and what they are connected to, decided once at the edge.

Stages receive an Environment instead of asking sys.stdout.isatty() themselves.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import BinaryIO, TextIO


@dataclass(frozen=True)
class Environment:
    stdin: TextIO
    stdout: TextIO
    stdout_bytes: BinaryIO
    stderr: TextIO
    stdin_isatty: bool
    stdout_isatty: bool
    stderr_isatty: bool
    no_color: bool

    @classmethod
    def from_process(cls) -> Environment:
        return cls(
            stdin=sys.stdin,
            stdout=sys.stdout,
            stdout_bytes=sys.stdout.buffer,
            stderr=sys.stderr,
            stdin_isatty=_isatty(sys.stdin),
            stdout_isatty=_isatty(sys.stdout),
            stderr_isatty=_isatty(sys.stderr),
            no_color=bool(os.environ.get("NO_COLOR")),
        )


def _isatty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False
