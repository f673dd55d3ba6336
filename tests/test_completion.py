"""Completion as a user installs it: `easee-tail completion SHELL`, the committed scripts, and
each script driven in the real shell (tmux), completing a subcommand, an option and an
observation name."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from easee_tail.completion import FILE_NAMES
from tests.conftest import Runner
from tests.harness.terminal import Terminal

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_completions_are_what_the_command_prints(cli: Runner, shell: str) -> None:
    printed = cli.run("completion", shell)
    assert printed.returncode == 0, printed.stderr
    committed = (ROOT / "completions" / FILE_NAMES[shell]).read_text()
    assert printed.stdout == committed, "run scripts/completions and commit the result"


def test_completion_of_an_unknown_shell_is_a_usage_error(cli: Runner) -> None:
    result = cli.run("completion", "tcsh")
    assert result.returncode == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr


# How each shell starts bare (no user config), and how it loads the committed script.
PROMPT = "READY>"
SHELLS = {
    "bash": ("bash --norc --noprofile", f"PS1='{PROMPT} '; source {{script}}"),
    "zsh": ("zsh -f", f"PS1='{PROMPT} '; autoload -Uz compinit && compinit -u && "
                      "source {script}"),
    "fish": ("fish --no-config", f"function fish_prompt; echo -n '{PROMPT} '; end; "
                                 "set -g fish_autosuggestion_enabled 0; source {script}"),
}


@pytest.fixture
def shell_terminal(tmp_path: Path) -> Iterator[Terminal]:
    terminal = Terminal.open(120, 20)
    yield terminal
    terminal.close()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_script_completes_in_the_real_shell(
    shell: str, easee_tail: str, shell_terminal: Terminal, tmp_path: Path
) -> None:
    start, load = SHELLS[shell]
    bin_dir = shlex.quote(str(Path(easee_tail).parent))
    # private home dirs: no history or config of the machine's user comes in
    homes = " ".join(f"{name}={shlex.quote(str(tmp_path / name.lower()))}"
                     for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "HOME"))
    shell_terminal.press(f"PATH={bin_dir}:$PATH {homes} exec {start}", "Enter")
    script = shlex.quote(str(ROOT / "completions" / FILE_NAMES[shell]))
    shell_terminal.press(load.format(script=script), "Enter")
    shell_terminal.press("clear", "Enter")
    shell_terminal.wait_for(lambda screen: screen.strip() == PROMPT)

    for typed, completed in (("easee-tail dem", "easee-tail demo"),
                             ("easee-tail demo --cou", "easee-tail demo --count"),
                             ("easee-tail --obs ChargerOp", "easee-tail --obs ChargerOpMode")):
        shell_terminal.press("-l", typed)
        shell_terminal.press("Tab")
        line = f"{PROMPT} {completed}"
        screen = shell_terminal.wait_for(partial(_shows_line, line), timeout=20)
        assert "Traceback" not in screen and "error" not in screen.lower()
        shell_terminal.press("C-u")
        shell_terminal.press("clear", "Enter")
        shell_terminal.wait_for(lambda screen: screen.strip() == PROMPT)


def _shows_line(start: str, screen: str) -> bool:
    return any(line.startswith(start) for line in screen.splitlines())
