"""The command line itself: help, version, completion scripts that match the CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from easee_tail import __version__
from easee_tail.cli import main
from easee_tail.params import parse_duration
from easee_tail.text import plural

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
    # both lists: the AMQP document's and Easee's wider one (ChargerOfflineReason, 11)
    assert _complete(easee_tail, "easee-tail --obs Charger") == [
        "ChargerOfflineReason", "ChargerOpMode", "ChargerRAT"]
    assert "InVolt_T1_T2" in _complete(easee_tail, "easee-tail demo --obs 190,InV")[0]
    assert "--count" in _complete(easee_tail, "easee-tail --cou")


def test_completion_offers_subcommands_at_the_first_word(easee_tail: str) -> None:
    assert _complete(easee_tail, "easee-tail d") == ["demo", "doctor"]
    assert {"tail", "replay", "logout", "profiles"} <= set(_complete(easee_tail, "easee-tail "))
    assert _complete(easee_tail, "easee-tail doctor --js") == ["--jsonl"]


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("90s", 90.0), ("1.5", 1.5), ("500ms", 0.5), ("5m", 300.0),
    ("1h30m", 5400.0), ("2d", 172800.0), ("1h0m30s", 3630.0), (" 2H ", 7200.0),
])
def test_durations_take_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1h30", "m", "-5", "nan", "inf", "1e3", "5 m", "1.h"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("args", [
    ["demo", "--duration", "nan"], ["demo", "--duration", "0"], ["demo", "--duration", "-1s"],
    ["demo", "--rate", "nan"], ["demo", "--silent-after", "inf"],
    ["demo", "--stats-interval", "10ms"], ["replay", "--speed", "nan", "-"],
    ["simulate", "--amqp-url", "amqps://h/", "--queue", "q", "--delay-ms", "nan", "1"],
])
def test_nonsense_numbers_are_usage_errors(easee_tail: str, args: list[str]) -> None:
    result = subprocess.run([easee_tail, *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 2, (args, result.stderr)
    assert "Invalid value for" in result.stderr and "Traceback" not in result.stderr


def test_a_duration_with_a_unit_ends_the_demo(easee_tail: str) -> None:
    result = subprocess.run([easee_tail, "demo", "--duration", "800ms", "--jsonl", "--rate",
                             "50"], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert 0 < len(result.stdout.splitlines()) < 200


@pytest.mark.parametrize(("args", "says"), [
    (["demo", "--jsonl", "--view", "state"], "--view state is a view of the table"),
    (["--amqp-url", "amqps://h/", "--queue", "q", "--no-reconnect", "--max-retries", "3"],
     "--no-reconnect makes none"),
    (["--amqp-url", "amqps://h/", "--queue", "q", "--peek", "--allow-shared"],
     "--allow-shared is for taking"),
    (["--amqp-url", "amqps://h/", "--queue", "q", "--token", "T0ken-x"],
     "--amqp-url connects without the Easee API"),
    (["--amqp-url", "amqps://h/", "--queue", "q", "--username", "a@b.c"],
     "--amqp-url connects without the Easee API"),
    (["demo", "--save", ""], "--save: needs a file name"),
    (["demo", "--obs", ""], "'--obs': needs an id or a name"),
    (["replay", "--obs", ",", "-"], "'--obs': needs an id or a name"),
])
def test_combinations_that_cannot_mean_anything_are_refused(
    easee_tail: str, args: list[str], says: str
) -> None:
    result = subprocess.run([easee_tail, *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60,
                            env={**os.environ, "EASEE_TOKEN": ""})
    assert result.returncode == 2, (args, result.stderr)
    assert says in result.stderr and "Traceback" not in result.stderr


def test_a_profile_view_does_not_conflict_with_jsonl(easee_tail: str, tmp_path: Path) -> None:
    config = tmp_path / "config" / "easee-tail"
    config.mkdir(parents=True)
    (config / "config.toml").write_text('default = "ops"\n[profile.ops]\nview = "state"\n')
    result = subprocess.run([easee_tail, "demo", "--jsonl", "--count", "2"], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=60,
                            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_counts_and_nouns_agree() -> None:
    assert [plural(n, "charger") for n in (0, 1, 2, 1500)] == [
        "0 chargers", "1 charger", "2 chargers", "1,500 chargers"]
    assert plural(1, "more charger") == "1 more charger"


def test_a_token_from_the_environment_beside_amqp_url_is_not_nonsense(easee_tail: str) -> None:
    result = subprocess.run([easee_tail, "--amqp-url", "amqps://localhost:1/", "--queue", "q"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                            env={**os.environ, "EASEE_TOKEN": "T0ken-from-env"})
    assert result.returncode == 5, result.stderr  # it tried the broker: refused, exit 5
