"""End to end: the installed easee-tail against the real broker over TLS and the HTTP API."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer

from easee_tail import catalogue
from tests.conftest import (
    LOGIN_PASSWORD,
    TOKEN,
    BrokerQueue,
    Runner,
    api_args,
    assert_no_secrets,
    clean_env,
    signal_and_wait,
    stream_details,
)
from tests.harness.rabbit import RabbitBroker


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def observation(value: object, stamp: str = "2026-11-24T12:00:00.1234567Z") -> str:
    return json.dumps({"Timestamp": stamp, "Value": value})


def tail(cli: Runner, api: HTTPServer, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return cli.run("--token", TOKEN, *api_args(api, cli.certs), *args, **kwargs)


def test_token_gets_details_from_the_api_and_consumes_over_verified_tls(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    queue.publish("EH123456.O.109", observation(3), {"ArrivalTime": "2026-11-24T12:00:00.5Z"})
    queue.publish("EH123456.O.120", observation(7.2))
    result = tail(cli, api, "--count", "2")
    assert result.returncode == 0, result.stderr
    first, second = lines(result.stdout)  # stdout is a pipe: JSON lines without --jsonl
    assert first["charger"] == "EH123456" and first["name"] == "ChargerOpMode"
    assert first["value"] == 3 and first["label"] == "Charging"
    assert first["timestamp"] == "2026-11-24T12:00:00.123456Z"
    assert first["arrival"] == "2026-11-24T12:00:00.500000Z"
    assert second["value"] == 7.2 and second["unit"] == "kW" and second["type"] == "Double"
    request, _ = api.log[0]
    assert request.headers["User-Agent"].startswith("easee-tail/")
    assert queue.depth() == 0  # both acknowledged
    assert_no_secrets(result.stdout, result.stderr)


def test_login_with_username_and_password_uses_the_returned_token(
    cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    httpserver.expect_request(
        "/api/accounts/login", method="POST",
        json={"userName": "partner@example.com", "password": LOGIN_PASSWORD},
    ).respond_with_json({"accessToken": TOKEN, "expiresIn": 86400, "tokenType": "Bearer",
                         "refreshToken": "refresh-xyz-123456"})
    httpserver.expect_request(
        "/api/streams/amqp/v2", headers={"Authorization": f"Bearer {TOKEN}"},
    ).respond_with_json(stream_details(rabbit, queue.name))
    queue.publish("EH000001.O.31", observation(True))
    env = clean_env(EASEE_USERNAME="partner@example.com", EASEE_PASSWORD=LOGIN_PASSWORD)
    result = cli.run(*api_args(httpserver, cli.certs), "--count", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[0]["value"] is True
    assert_no_secrets(result.stdout, result.stderr)


def test_every_catalogue_observation_decodes_to_its_type(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    place = {"Latitude": 59.9, "Longitude": 10.7, "Altitude": 12.0, "DOP": 1.0}
    samples = {"Integer": "42", "Double": "230.5", "Boolean": "true", "String": "text",
               "Position": place, "": "as sent"}  # "": no type published (wider list)
    table = list(catalogue.load())  # both lists
    messages = []
    for entry in table:
        value: object = samples[entry.type]  # as strings: the decoder must type them
        if entry.carries_json:
            value = json.dumps({"Id": 7, "Auth": "", "EnergyKwh": 1.25, "Extra": [1]})
        messages.append((f"EH777777.O.{entry.id}", observation(value), None))
    queue.publish_many(messages)
    result = tail(cli, api, "--count", str(len(table)), "--jsonl")
    assert result.returncode == 0, result.stderr
    records = {record["id"]: record for record in lines(result.stdout)}
    assert len(records) == len(table) == 177
    python_types = {"Integer": int, "Double": float, "Boolean": bool, "String": str,
                    "Position": dict, "": str}
    for entry in table:
        record = records[entry.id]
        assert record["name"] == entry.name and record["type"] == (entry.type or None)
        assert record["unit"] == entry.unit and record["tags"] == list(entry.tags)
        if entry.carries_json:
            assert record["value"] == {"Id": 7, "Auth": "", "EnergyKwh": 1.25, "Extra": [1]}
        else:
            assert type(record["value"]) is python_types[entry.type], entry.name
        assert record["notes"] == []
    assert records[108]["value"] == "txet" and records[108]["raw"] == "text"


def test_enum_labels_flags_and_tolerated_shapes(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    queue.publish_many([
        ("EH1.O.96", observation(55), None),
        ("EH1.O.110", observation(30), None),
        ("EH1.O.21", observation(1), None),
        ("EH1.O.146", observation(2), None),
        ("EH1.O.141", observation(1), None),
        ("EH1.O.89", observation((1 << 4) | (1 << 20) | (1 << 9)), None),
        ("EH1.O.109", observation(99), None),  # a code the table does not know
        ("EH1.O.31", json.dumps({"timestamp": "2026-11-24T12:00:00Z", "value": "False"}), None),
        ("EH1.O.30", json.dumps({"Value": 1}), None),
        ("EH1.O.108", observation("4321DCBA"), None),
    ])
    result = tail(cli, api, "--count", "10")
    assert result.returncode == 0, result.stderr
    got = [(r["name"], r["value"], r["label"]) for r in lines(result.stdout)]
    assert got == [
        ("ReasonForNoCurrent", 55, "pending authorization"),
        ("OutputPhase", 30, "3-phase"),
        ("DetectedPowerGridType", 1, "TN 3-phase"),
        ("LocalNodeType", 2, "Extender"),
        ("ChargerRAT", 1, "WiFi"),
        ("RebootReason", (1 << 4) | (1 << 20) | (1 << 9),
         "software reset, bit 9, reboot requested"),
        ("ChargerOpMode", 99, None),
        ("IsEnabled", False, None),
        ("LockCablePermanently", True, None),
        ("UserIDTokenReversed", "ABCD1234", None),
    ]


def test_ids_outside_the_amqp_list_are_named_from_easees_wider_list(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    queue.publish_many([
        ("EH3.O.119", observation(7), None),
        ("EH3.O.118", observation("Overcurrent on L1"), None),
        ("EH3.O.25", observation({"Latitude": 59.9, "Longitude": 10.7}), None),
        ("EH3.O.241", observation("AA:BB:CC:00:11:22"), None),  # no type published
        ("EH3.O.109", observation(3), None),
    ])
    result = tail(cli, api, "--count", "5")
    assert result.returncode == 0, result.stderr
    code, text, place, mac, mode = lines(result.stdout)
    assert (code["name"], code["value"], code["type"]) == ("ErrorCode", 7, "Integer")
    assert "unlisted" in code["tags"] and not code["notes"]
    assert text["name"] == "ErrorString" and text["value"] == "Overcurrent on L1"
    assert place["name"] == "Location" and place["value"]["Latitude"] == 59.9
    assert place["type"] == "Position" and not place["notes"]
    assert mac["name"] == "WiFiMACAddress" and mac["value"] == "AA:BB:CC:00:11:22"
    assert mac["type"] is None and not mac["notes"]
    assert "unlisted" not in mode["tags"]  # the AMQP list's own stay as they were


def test_unknown_ids_malformed_bodies_and_other_kinds_are_shown_saved_and_acked(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, tmp_path: Path
) -> None:
    queue.publish_many([
        ("EH2.O.4242", observation(1.5), None),
        ("EH2.O.120", b"not json {", {"ArrivalTime": "2026-11-24T12:00:00Z"}),
        ("EH2.O.120", b"\xff\xfe\x00binary", None),
        ("EH2.O.120", json.dumps({"Timestamp": "2026-11-24T12:00:00Z"}), None),
        ("EH2.O.129", observation("{not json"), None),
        ("EH2.CR.48.639000000000000000",
         json.dumps({"Id": 48, "WasAccepted": False, "ResultCode": 3}), None),
        ("EH2.P", b"", None),
        ("EH2.O.120", observation("seven"), None),
    ])
    save = tmp_path / "saved.jsonl"
    result = tail(cli, api, "--count", "8", "--save", str(save))
    assert result.returncode == 0, result.stderr
    records = lines(result.stdout)
    assert lines(save.read_text()) == records
    unknown, not_json, binary, no_value, bad_json, response, pulse, bad_value = records
    assert unknown["name"] == "Unknown" and unknown["value"] == 1.5 and unknown["id"] == 4242
    assert not_json["kind"] == "error" and not_json["raw"] == "not json {"
    assert not_json["headers"] == {"ArrivalTime": "2026-11-24T12:00:00Z"}
    assert not_json["routing_key"] == "EH2.O.120"
    assert binary["kind"] == "error" and binary["raw_encoding"] == "base64"
    assert no_value["kind"] == "error" and "no Value" in no_value["error"]
    assert bad_json["kind"] == "observation" and bad_json["value"] == "{not json"
    assert any("not valid JSON" in note for note in bad_json["notes"])
    assert response["kind"] == "command_response" and response["label"] == "rejected (result 3)"
    assert pulse["kind"] == "pulse" and pulse["charger"] == "EH2"
    assert bad_value["value"] == "seven" and bad_value["notes"]
    assert queue.depth() == 0


def test_latency_from_every_arrival_time_form(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    now = time.time()
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 2)) + ".1234567Z"
    queue.publish_many([
        ("EH3.O.120", observation(1.0), {"ArrivalTime": iso}),
        ("EH3.O.120", observation(1.0), {"ArrivalTime": int((now - 2) * 1000)}),
        ("EH3.O.120", observation(1.0), {"ArrivalTime": int(now - 2)}),
        ("EH3.O.120", observation(1.0), {"ArrivalTime": str(int(now - 2))}),
        ("EH3.O.120", observation(1.0),  # an AMQP timestamp (whole seconds)
         {"ArrivalTime": datetime.fromtimestamp(int(now - 2), UTC).replace(tzinfo=None)}),
        ("EH3.O.120", observation(1.0),  # .NET ticks
         {"ArrivalTime": int((now - 2) * 10_000_000) + 621_355_968_000_000_000}),
        ("EH3.O.120", observation(1.0), None),
        ("EH3.O.120", observation(1.0), {"ArrivalTime": "yesterday-ish"}),
        ("EH3.O.120", observation(1.0), {"ArrivalTime": int(now + 3600)}),  # skewed clock
    ])
    result = tail(cli, api, "--count", "9")
    assert result.returncode == 0, result.stderr
    records = lines(result.stdout)
    latencies = [record["latency_ms"] for record in records]
    for latency in latencies[:6]:
        assert latency is not None and 1000 < latency < 60_000
    assert latencies[6] is None and latencies[7] is None
    assert latencies[8] < -3_000_000
    assert any("ahead of this machine's clock: this clock is behind" in note
               for note in records[8]["notes"])
    assert not any("negative latency" in note for note in records[0]["notes"])


def test_filters_by_charger_and_by_observation_name_or_id_ack_everything(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    queue.publish_many([
        ("EHAAAAAA.O.109", observation(1), None),
        ("EHBBBBBB.O.109", observation(2), None),
        ("EHAAAAAA.O.120", observation(1.0), None),
        ("EHAAAAAA.O.96", observation(0), None),
        ("EHAAAAAA.O.109", observation(3), None),
    ])
    result = tail(cli, api, "--charger", "ehaaaaaa", "--obs", "chargeropmode,96", "--count", "3")
    assert result.returncode == 0, result.stderr
    got = [(r["charger"], r["id"], r["value"]) for r in lines(result.stdout)]
    assert got == [("EHAAAAAA", 109, 1), ("EHAAAAAA", 96, 0), ("EHAAAAAA", 109, 3)]
    assert queue.depth() == 0  # the filtered-out messages were consumed too (documented)


def test_unknown_observation_name_is_a_usage_error_with_suggestions(cli: Runner) -> None:
    result = cli.run("--amqp-url", "amqps://u:p@localhost/", "--queue", "q", "--obs", "ChargerOpMod")
    assert result.returncode == 2
    assert "ChargerOpMode" in result.stderr and "Traceback" not in result.stderr


def test_count_leaves_the_rest_in_the_queue(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    queue.publish_many([("EH4.O.120", observation(float(i)), None) for i in range(10)])
    result = tail(cli, api, "--count", "4", "--prefetch", "50")
    assert [r["value"] for r in lines(result.stdout)] == [0.0, 1.0, 2.0, 3.0]
    assert queue.depth() == 6


def test_duration_exits_zero_after_that_time(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    started = time.monotonic()
    result = tail(cli, api, "--duration", "1.5")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert 1.5 <= elapsed < 20


def test_backlog_is_announced(cli: Runner, api: HTTPServer, queue: BrokerQueue) -> None:
    queue.publish_many([("EH5.O.120", observation(1.0), None)] * 3)
    result = tail(cli, api, "--count", "3")
    assert "3 messages are waiting" in result.stderr


def test_a_queue_with_another_consumer_is_refused_unless_allowed(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, rabbit: RabbitBroker
) -> None:
    connection = rabbit.plain_connection()
    channel = connection.channel()
    channel.basic_consume(queue.name, lambda *_: None)
    try:
        refused = tail(cli, api, "--count", "1")
        assert refused.returncode == 10
        assert "--allow-shared" in refused.stderr and "1 other consumer" in refused.stderr
        allowed = tail(cli, api, "--allow-shared", "--duration", "0.5")
        assert allowed.returncode == 0, allowed.stderr
        assert "warning" in allowed.stderr
    finally:
        connection.close()


def test_piping_into_head_ends_cleanly_and_acks_only_what_was_written(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    queue.publish_many([("EH6.O.120", observation(float(i)), None) for i in range(5000)])
    command = (f"'{cli.executable}' --token {TOKEN} {' '.join(api_args(api, cli.certs))} "
               "--prefetch 100 | head -n 3; echo \"status=${PIPESTATUS[0]}\"")
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                            timeout=60, env=clean_env())
    assert time.monotonic() - started < 30
    out = result.stdout.splitlines()
    assert [json.loads(line)["value"] for line in out[:3]] == [0.0, 1.0, 2.0]
    assert out[3] == "status=0"
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr
    # What head never read may have been written to the pipe, but never beyond that:
    # the consumer stopped at the first failed write, so most of the messages remain.
    assert queue.depth() > 4000


def _wait_for_lines(path: Path, at_least: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {at_least} lines")


def _stop_mid_stream(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, tmp_path: Path, signum: int
) -> tuple[int, list[str], float]:
    total = 20_000
    queue.publish_many([("EH7.O.120", observation(float(i)), None) for i in range(total)])
    save = tmp_path / "save.jsonl"
    process = cli.popen("--token", TOKEN, *api_args(api, cli.certs), "--jsonl",
                        "--save", str(save), "--prefetch", "200", stdout=subprocess.DEVNULL)
    _wait_for_lines(save, 500)
    code, stopped_in, _stderr = signal_and_wait(process, signum)
    saved = save.read_text()
    assert saved.endswith("\n")
    written = saved.splitlines()
    for line in written:
        json.loads(line)  # every line whole
    # Nothing acknowledged that was not written: what is gone from the queue is on disk.
    assert total - queue.depth() <= len(written)
    return code, written, stopped_in


def test_sigint_ends_promptly_with_130_and_every_line_whole(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, tmp_path: Path
) -> None:
    code, written, stopped_in = _stop_mid_stream(cli, api, queue, tmp_path, signal.SIGINT)
    assert code == 130 and stopped_in < 5 and written


def test_sigterm_ends_promptly_with_143_and_every_line_whole(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, tmp_path: Path
) -> None:
    code, written, stopped_in = _stop_mid_stream(cli, api, queue, tmp_path, signal.SIGTERM)
    assert code == 143 and stopped_in < 5 and written


def test_jsonl_lines_reach_a_tail_reader_promptly(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    process = cli.popen("--token", TOKEN, *api_args(api, cli.certs), "--jsonl")
    try:
        queue.wait_for_consumers(1)  # connected and idle
        queue.publish("EH8.O.109", observation(3))
        published = time.monotonic()
        assert process.stdout is not None
        line = process.stdout.readline()  # not held in a buffer until more come
        assert time.monotonic() - published < 5
        assert json.loads(line)["label"] == "Charging"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
