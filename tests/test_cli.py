"""The command line itself: help, version, completion scripts that match the CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from click.testing import CliRunner

from easee_tail import __version__
from easee_tail.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_flag_of_the_tail_command() -> None:
    result = CliRunner().invoke(main, ["tail", "--help"])
    assert result.exit_code == 0
    for flag in ("--token", "--username", "--password", "--api-url", "--amqp-url", "--queue",
                 "--ca-file", "--prefetch", "--allow-shared", "--jsonl", "--save", "--charger",
                 "--obs", "--count", "--duration"):
        assert flag in result.output


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2 and "No such command" in result.output


def _complete(easee_tail: str, words: str) -> list[str]:
    env = {**os.environ, "_EASEE_TAIL_COMPLETE": "bash_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    output = subprocess.run([easee_tail], env=env, capture_output=True, text=True).stdout
    return [line.split(",", 1)[1] for line in output.splitlines()]


def test_completion_offers_observation_names_from_the_catalogue(easee_tail: str) -> None:
    assert _complete(easee_tail, "easee-tail --obs Charger") == ["ChargerOpMode", "ChargerRAT"]
    assert "InVolt_T1_T2" in _complete(easee_tail, "easee-tail demo --obs 190,InV")[0]
    assert "--count" in _complete(easee_tail, "easee-tail --cou")


def test_completion_offers_subcommands_at_the_first_word(easee_tail: str) -> None:
    assert _complete(easee_tail, "easee-tail d") == ["demo", "doctor"]
    assert {"tail", "replay", "logout", "profiles"} <= set(_complete(easee_tail, "easee-tail "))
    assert _complete(easee_tail, "easee-tail doctor --js") == ["--jsonl"]
