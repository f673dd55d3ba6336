"""Plain lines from a template (`-f/--format`), and the short options peers' users type."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from easee_tail.catalogue import load
from easee_tail.decode import decode
from easee_tail.model import Delivery, Record
from easee_tail.sinks.template import PRESETS, Template, TemplateError
from tests.conftest import Runner

CATALOGUE = load()


def record(routing_key: str, value: str) -> Record:
    body = f'{{"Timestamp": "2026-11-26T10:00:00Z", "Value": {value}}}'.encode()
    return decode(Delivery(routing_key, body, None, 1_795_000_000.0, False, 1), CATALOGUE)


def test_a_template_fills_the_json_lines_fields() -> None:
    line = Template("{charger} {id} {name} {value} {unit} {label} {error}")(
        record("EHTEMPL1.O.109", "3"))
    assert line == b"EHTEMPL1 109 ChargerOpMode 3 - Charging -\n"
    shown = Template("{shown}|{timestamp}|{tags}")(record("EHTEMPL1.O.120", "7.25"))
    assert shown == b'7.25 kW|2026-11-26T10:00:00Z|["telemetry"]\n'


def test_a_template_line_is_one_line_with_controls_visible() -> None:
    line = Template("{charger} {value}")(record("EH\x1b[2J.O.128", '"a\\nb\\u001b]0;x"'))
    assert line == b"EH\\x1b[2J a b\\x1b]0;x\n"


@pytest.mark.parametrize(("text", "says"), [
    ("{nope}", "no field named 'nope'"), ("plain text", "names no field"),
    ("{value:>8}", "no format spec"), ("{value!r}", "no format spec"), ("{", "not a template"),
])
def test_a_bad_template_is_refused(text: str, says: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(says)):
        Template(text)


def test_every_preset_is_a_valid_template() -> None:
    for name in PRESETS:
        assert Template(name)(record("EHTEMPL1.O.109", "3")).endswith(b"\n")


def test_short_options_and_a_preset_end_to_end(cli: Runner, tmp_path: Path) -> None:
    saved = tmp_path / "saved.jsonl"
    result = cli.run("demo", "-c", "5", "-f", "short", "--seed", "4", "-w", str(saved),
                     "--rate", "1000")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} E[HC]\w{6} \d+ \w+ ", line) for line in lines)
    records = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [r["charger"] for r in records] == [line.split()[1] for line in lines]
    serial = records[0]["charger"]
    replayed = cli.run("replay", str(saved), "-j", "-s", serial.lower(), "-o",
                       str(records[0]["id"]))
    assert replayed.returncode == 0, replayed.stderr
    again = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert again and all(r["charger"] == serial and r["id"] == records[0]["id"] for r in again)


def test_an_unknown_field_is_a_usage_error(cli: Runner) -> None:
    result = cli.run("demo", "-c", "1", "-f", "{charger} {nope}")
    assert result.returncode == 2 and "no field named 'nope'" in result.stderr
    both = cli.run("demo", "-c", "1", "-f", "short", "--jsonl")
    assert both.returncode == 2 and "--format writes plain lines" in both.stderr
