"""`easee-tail doctor` against the real broker and a real HTTP server, each failure provoked."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import (
    TOKEN,
    BrokerQueue,
    Runner,
    api_args,
    assert_no_secrets,
    free_closed_port,
    stream_details,
)
from tests.harness.rabbit import RabbitBroker
from tests.harness.terminal import Terminal


def doctor(cli: Runner, server: HTTPServer, *extra: str,
           token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    result = cli.run("doctor", "--token", token, *api_args(server, cli.certs), *extra)
    assert "Traceback" not in result.stderr + result.stdout
    assert_no_secrets(result.stdout, result.stderr)
    return result


def line(output: str, check: str) -> str:
    """The checklist line of one check (its mark first)."""
    return next(text for text in output.splitlines() if re.match(rf"^. {check}\s", text))


def serve(server: HTTPServer, rabbit: RabbitBroker, queue: str, **overrides: Any) -> None:
    server.expect_request("/api/streams/amqp/v2").respond_with_json(
        stream_details(rabbit, queue, **overrides))


def test_all_checks_pass_and_nothing_is_consumed(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    queue.publish_many([("EHDOCTOR.O.109", '{"Value": 3}', None)] * 3)
    result = doctor(cli, api)
    assert result.returncode == 0, result.stdout + result.stderr
    marks = [text[0] for text in result.stdout.splitlines()[1:] if text[:1] in "✓!✗–"]
    assert marks == ["✓"] * 10
    assert re.search(r"TLS certificate\s+valid for localhost .*expires \d{4}-\d\d-\d\d "
                     r"\(in \d+ days\)", result.stdout)
    assert "3 messages waiting" in line(result.stdout, "backlog")
    assert queue.depth() == 3  # a passive look: nothing taken


def test_unreachable_api(cli: Runner, httpserver: HTTPServer) -> None:
    result = cli.run("doctor", "--token", TOKEN, "--api-url",
                     f"http://127.0.0.1:{free_closed_port()}")
    assert result.returncode == 5
    assert "connection refused" in line(result.stdout, "API reachable")
    assert "→ check --api-url" in result.stdout
    assert line(result.stdout, "backlog").startswith("–")


def test_rejected_token(cli: Runner, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        {"title": "Unauthorized"}, status=401)
    httpserver.expect_request("/api/accounts/profile").respond_with_json({}, status=401)
    result = doctor(cli, httpserver, token="expired-token-XYZ1")
    assert result.returncode == 3
    assert line(result.stdout, "API reachable").startswith("✓")
    assert line(result.stdout, "credentials accepted").startswith("✗")
    assert line(result.stdout, "integration account").startswith("–")


def test_not_an_integration_account(cli: Runner, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        {"title": "Forbidden"}, status=403)
    result = doctor(cli, httpserver)
    assert result.returncode == 4
    assert line(result.stdout, "credentials accepted").startswith("✓")
    assert line(result.stdout, "integration account").startswith("✗")
    assert "→ the stream needs an integration" in result.stdout


def test_incomplete_connection_details(cli: Runner, httpserver: HTTPServer,
                                       rabbit: RabbitBroker, queue: BrokerQueue) -> None:
    details = stream_details(rabbit, queue.name)
    del details["password"]
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(details)
    result = doctor(cli, httpserver)
    assert result.returncode == 7
    assert "password" in line(result.stdout, "connection details complete")


def test_closed_broker_port(cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker,
                            queue: BrokerQueue) -> None:
    serve(httpserver, rabbit, queue.name, port=free_closed_port())
    result = doctor(cli, httpserver)
    assert result.returncode == 5
    assert "connection refused" in line(result.stdout, "broker reachable")
    assert line(result.stdout, "connection details complete").startswith("✓")


def test_certificate_from_another_ca(cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker,
                                     queue: BrokerQueue) -> None:
    serve(httpserver, rabbit, queue.name)
    result = cli.run("doctor", "--token", TOKEN, "--api-url", httpserver.url_for("").rstrip("/"),
                     "--ca-file", str(cli.certs.other_ca_file))
    assert result.returncode == 6
    assert line(result.stdout, "broker reachable").startswith("✓")
    assert "does not verify" in line(result.stdout, "TLS certificate")
    assert "→ pass --ca-file" in result.stdout


def test_refused_amqp_login(cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker,
                            queue: BrokerQueue) -> None:
    serve(httpserver, rabbit, queue.name, password="rotated-Pw-0000")
    result = doctor(cli, httpserver)
    assert result.returncode == 8
    assert line(result.stdout, "TLS certificate").startswith("✓")
    assert line(result.stdout, "AMQP login").startswith("✗")
    assert "rotated-Pw-0000" not in result.stdout + result.stderr
    assert result.stdout.count("rotated") == 1  # the advice, not the detail again


def test_missing_queue(cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker,
                       queue: BrokerQueue) -> None:
    serve(httpserver, rabbit, "Operator_gone.Q")
    result = doctor(cli, httpserver)
    assert result.returncode == 9
    assert line(result.stdout, "AMQP login").startswith("✓")
    assert "does not exist" in line(result.stdout, "queue exists")


@pytest.fixture
def other_consumer(rabbit: RabbitBroker, queue: BrokerQueue) -> Iterator[None]:
    with rabbit.channel() as channel:
        channel.basic_consume(queue.name, lambda *_: None)
        yield


def test_attached_consumer_is_a_warning_with_advice_and_jsonl(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, other_consumer: None
) -> None:
    result = doctor(cli, api, "--jsonl")
    assert result.returncode == 0  # a warning; --strict makes it fail
    assert doctor(cli, api, "--jsonl", "--strict").returncode == 10
    checks = [json.loads(text) for text in result.stdout.splitlines()]
    assert [check["check"] for check in checks][-2:] == ["no other consumers", "backlog"]
    by_name = {check["check"]: check for check in checks}
    assert by_name["no other consumers"]["status"] == "warn"
    assert "1 consumer attached" in by_name["no other consumers"]["detail"]
    assert "--peek" in by_name["no other consumers"]["advice"]
    assert by_name["no other consumers"]["exit_code"] == 10
    assert by_name["backlog"]["status"] == "pass"
    assert all(check["status"] == "pass" for name, check in by_name.items()
               if name not in ("no other consumers",))


def test_direct_amqp_url_skips_the_api(cli: Runner, rabbit: RabbitBroker,
                                       queue: BrokerQueue) -> None:
    result = cli.run("doctor", "--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                     "--ca-file", str(cli.certs.ca_file))
    assert result.returncode == 0, result.stdout
    assert line(result.stdout, "API reachable").startswith("–")
    assert line(result.stdout, "queue exists").startswith("✓")
    assert_no_secrets(result.stdout, result.stderr)


@pytest.mark.parametrize("jsonl", [False, True])
def test_without_credentials_the_api_is_still_checked(
    cli: Runner, httpserver: HTTPServer, jsonl: bool
) -> None:
    result = cli.run("doctor", *api_args(httpserver, cli.certs), *(["--jsonl"] if jsonl else []))
    assert result.returncode == 2, result.stdout + result.stderr
    if jsonl:
        checks = {check["check"]: check for check in map(json.loads, result.stdout.splitlines())}
        assert checks["API reachable"]["status"] == "pass"
        assert checks["credentials accepted"]["status"] == "fail"
        assert checks["credentials accepted"]["detail"] == "none given"
        assert checks["backlog"]["status"] == "skip"
    else:
        assert line(result.stdout, "API reachable").startswith("✓")
        assert "none given" in line(result.stdout, "credentials accepted")
        assert "→ pass --token" in result.stdout


def test_doctor_wraps_at_word_boundaries_on_a_terminal(
    cli: Runner, terminal: Callable[..., Terminal]
) -> None:
    screen = terminal([cli.executable, "doctor", "--token", TOKEN, "--api-url",
                       f"http://127.0.0.1:{free_closed_port()}"], width=60)
    shown = screen.wait_for(lambda text: "EXIT=" in text)
    assert "EXIT=5" in shown
    lines = shown.splitlines()
    first = next(index for index, text in enumerate(lines) if text.startswith("✗ API reachable"))
    assert lines[first + 1].startswith(" " * 30)  # the detail goes on in its own column
    assert all(len(text) <= 60 for text in lines)
