"""Shell completion scripts, as click writes them for this command line.

`easee-tail completion SHELL` prints one; completions/ holds the same three files for
packagers, and the wheel installs them where bash-completion, zsh and fish look.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

PROG_NAME = "easee-tail"
COMPLETE_VAR = "_EASEE_TAIL_COMPLETE"
SHELLS = ("bash", "zsh", "fish")

# Where each shell's loader looks for a command's completion, by file name.
FILE_NAMES = {"bash": "easee-tail.bash", "zsh": "_easee-tail", "fish": "easee-tail.fish"}


def script(command: click.Command, shell: str) -> str:
    """The script that makes `shell` ask easee-tail itself for completions."""
    complete_class = get_completion_class(shell)
    if complete_class is None:
        raise click.BadParameter(f"no completion for {shell!r}", param_hint="SHELL")
    source = complete_class(command, {}, PROG_NAME, COMPLETE_VAR).source()
    return source if source.endswith("\n") else source + "\n"

