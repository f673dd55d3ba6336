"""Help people read: the default command's options in `easee-tail --help`, examples at the
end of every command's help, --debug everywhere, and every README example parses."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest

from easee_tail.cli import main

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["tail", "demo", "replay", "connection", "doctor", "profiles", "logout",
            "simulate", "completion", "observations"]


def run(easee_tail: str, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([easee_tail, *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=env)


def test_the_main_help_shows_the_default_commands_options(easee_tail: str) -> None:
    shown = run(easee_tail, "--help").stdout
    assert "Options of `easee-tail [OPTIONS]` (the tail command)" in shown
    for flag in ("--token", "--amqp-url", "-c, --count", "-s, --charger", "-f, --format",
                 "--peek", "--idle-timeout", "-e, --exit-at-end"):
        assert flag in shown, flag
    assert shown.rstrip().splitlines()[-1].strip().startswith(("what was waiting", "easee"))


@pytest.fixture
def work_profile(tmp_path: Path) -> dict[str, str]:
    """An environment whose config has the profile `work` the examples use."""
    config = tmp_path / "config" / "easee-tail"
    config.mkdir(parents=True)
    (config / "config.toml").write_text('[profile.work]\nusername = "a@example.com"\n')
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_ends_with_examples_and_has_debug(
    easee_tail: str, command: str, work_profile: dict[str, str]
) -> None:
    shown = run(easee_tail, command, "--help").stdout
    assert "--debug" in shown
    tail = shown[shown.rindex("Examples:"):].splitlines()[1:]
    commands = [line.strip() for line in tail if line.strip().startswith("easee-tail")]
    assert len(commands) >= 2, shown
    for example in commands:
        assert_parses(easee_tail, example, work_profile)


def readme_examples() -> list[str]:
    """Command lines of README's sh and console blocks (a console block's `$ ` lines)."""
    text = (ROOT / "README.md").read_text()
    found = []
    for kind, block in re.findall(r"```(sh|console)\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if kind == "console":
                if not line.startswith("$ easee-tail"):
                    continue
                line = line[2:]
            if line.startswith("easee-tail"):
                found.append(line)
    return found


def assert_parses(easee_tail: str, line: str, env: dict[str, str] | None = None) -> None:
    """The command up to its first pipe or redirection parses: run with --help appended,
    click reads every option (an unknown one, or a missing value, is an error) and stops."""
    words = []
    for word in shlex.split(line, comments=True):
        if word in ("|", ">", "<", "&&", ";") or word.startswith((">", "|")):
            break
        words.append(word)
    result = run(easee_tail, *words[1:], "--help", env=env)
    assert result.returncode == 0, f"{line}\n{result.stderr}"
    # --help stops before values are checked: parse them too (in-process, nothing runs),
    # letting pass only files the example names but this machine lacks
    with pytest.MonkeyPatch.context() as patch:
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        try:
            group = main.make_context("easee-tail", words[1:])
            rest = [*getattr(group, "_protected_args", []), *group.args]
            name, command, args = main.resolve_command(group, rest)
            assert command is not None and name is not None
            command.make_context(name, args, parent=group)
        except click.BadParameter as problem:
            assert problem.param is not None and isinstance(problem.param.type, click.Path), \
                f"{line}: {problem.format_message()}"
        except click.UsageError as problem:
            raise AssertionError(f"{line}: {problem.format_message()}") from None


def test_every_readme_example_parses(easee_tail: str, work_profile: dict[str, str]) -> None:
    examples = readme_examples()
    assert len(examples) >= 25
    for line in examples:
        assert_parses(easee_tail, line, work_profile)
