"""A real terminal for the tests: a tmux window of a given size, keys sent, the screen read."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable

# A tmux server of the tests' own, apart from any the user runs.
SOCKET = f"easee-tail-tests-{os.getpid()}"


def tmux(*args: str) -> str:
    """Run a tmux command on the tests' server; its output. Raises with tmux's own message."""
    done = subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"tmux {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


class Terminal:
    def __init__(self, session: str) -> None:
        self.session = session

    @classmethod
    def open(cls, width: int, height: int) -> Terminal:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is needed for the terminal tests (scripts/test installs it)")
        session = f"easee-{uuid.uuid4().hex[:8]}"
        # A server whose last session just closed exits, and a session started at that moment
        # fails ("server exited unexpectedly"): try again on the next server.
        for attempt in range(5):
            try:
                # sized first, then the command typed: a program started with the session may
                # see tmux's default 80 columns before the window takes its size
                tmux("new-session", "-d", "-s", session, "-x", str(width), "-y", str(height),
                     "bash", "--norc", "--noprofile")
                break
            except RuntimeError:
                if attempt == 4:
                    raise
                time.sleep(0.3)
        tmux("resize-window", "-t", session, "-x", str(width), "-y", str(height))
        return cls(session)

    def run(self, command: list[str], after: str = "") -> None:
        """Type the command; its exit code is printed as EXIT=N when it ends."""
        # the test's own user dirs (tmux sessions inherit the tmux server's environment)
        dirs = "".join(f"{key}={shlex.quote(os.environ[key])} "
                       for key in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME") if key in os.environ)
        # "EX""IT" so that the typed line itself never reads as the exit line
        self.press(f"clear; {dirs}NO_COLOR=1 {shlex.join(command)}; echo EX\"\"IT=$?{after}",
                   "Enter")

    def screen(self, escapes: bool = False) -> str:
        return tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.session)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30,
                 escapes: bool = False) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen(escapes)
            if predicate(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the terminal never showed what was expected:\n{screen}")

    def cursor_visible(self) -> bool:
        """Whether the program has the cursor shown (a live table hides it)."""
        return tmux("display-message", "-p", "-t", self.session, "#{cursor_flag}").strip() == "1"

    def wait_until(self, predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}:\n{self.screen()}")
            time.sleep(0.1)

    def resize(self, width: int, height: int) -> None:
        """The window resized, as a person drags it: the program gets SIGWINCH."""
        tmux("resize-window", "-t", self.session, "-x", str(width), "-y", str(height))

    def press(self, *keys: str) -> None:
        tmux("send-keys", "-t", self.session, *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", SOCKET, "kill-session", "-t", self.session],
                       capture_output=True)
