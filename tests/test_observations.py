"""`easee-tail observations`: the catalogue as a user reads it, pipes it, or asks for JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.conftest import Runner

PACKAGED_TSV = Path(__file__).resolve().parents[1] / "easee_tail" / "data" / "observations.tsv"


def catalogue_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(PACKAGED_TSV.read_text().splitlines(), delimiter="\t"))


def test_piped_listing_is_one_tab_separated_line_per_observation(cli: Runner) -> None:
    result = cli.run("observations")
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    rows = catalogue_rows()
    assert [int(line[0]) for line in lines] == sorted(int(row["id"]) for row in rows)
    by_id = {line[0]: line for line in lines}
    for row in rows:
        assert by_id[row["id"]][1:4] == [row["name"], row["type"], row["unit"]]


def test_json_listing_and_one_entry_with_its_labels(cli: Runner) -> None:
    everything = json.loads(cli.run("observations", "--json").stdout)
    assert len(everything) == len(catalogue_rows())
    one = json.loads(cli.run("observations", "chargeropmode", "--json").stdout)
    assert one["id"] == 109 and one["type"] == "Integer"
    assert one["labels"]["3"] == "Charging"
    flags = json.loads(cli.run("observations", "89", "--json").stdout)
    assert flags["flags"]  # the reboot reason is a bit mask


def test_one_entry_in_full_by_id_or_name(cli: Runner) -> None:
    result = cli.run("observations", "109", "ReasonForNoCurrent")
    assert result.returncode == 0
    assert "109 ChargerOpMode" in result.stdout and "3  Charging" in result.stdout
    assert "96 ReasonForNoCurrent" in result.stdout


def test_unknown_names_and_ids_are_usage_errors(cli: Runner) -> None:
    named = cli.run("observations", "opmode")
    assert named.returncode == 2 and "did you mean ChargerOpMode" in named.stderr
    numbered = cli.run("observations", "99999")
    assert numbered.returncode == 2
    assert "no observation has id '99999'" in numbered.stderr
    assert "did you mean 241 WiFiMACAddress, 250 ConnectedToCloud" in numbered.stderr
    for command in (["demo"], ["replay", "-"], ["tail"]):  # --obs the same way everywhere
        wrong = cli.run(*command, "--obs", "9999", "--count", "1")
        assert wrong.returncode == 2 and "no observation has id '9999'" in wrong.stderr


def test_the_wider_list_names_ids_outside_the_amqp_list(cli: Runner) -> None:
    listed = cli.run("observations").stdout.splitlines()
    everything = cli.run("observations", "--all").stdout.splitlines()
    assert len(listed) == 51 and len(everything) == 177
    assert set(listed) < set(everything)
    error_code = cli.run("observations", "ErrorCode", "--json")
    entry = json.loads(error_code.stdout)
    assert entry["id"] == 119 and entry["type"] == "Integer" and not entry["in_amqp_list"]
    assert "unlisted" in entry["tags"] and "partner" in entry["roles"]
    shown = cli.run("observations", "119").stdout
    assert "not the AMQP document's" in shown


def test_piped_text_has_no_trailing_spaces(cli: Runner) -> None:
    for args in (["observations", "109", "96"], ["observations"], ["--help"],
                 ["demo", "-c", "3", "-f", "short"]):
        result = cli.run(*args)
        assert result.returncode == 0, result.stderr
        assert not [line for line in result.stdout.splitlines() if line != line.rstrip()], args
