"""The secrets audit: every failure path, run with --debug and --save, with recognisable
values for the token, the login password and the broker password. None may appear in
stdout, stderr (errors, warnings, debug logs of pika and HTTP), or the saved file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import (
    LOGIN_PASSWORD,
    SECRETS,
    TOKEN,
    BrokerQueue,
    Runner,
    api_args,
    clean_env,
    stream_details,
)
from tests.harness.certs import Certificates
from tests.harness.rabbit import PASSWORD, USER, RabbitBroker, free_port

ROTATED = "rotated-broker-Secret-77Hq"  # a wrong broker password is a secret too
ALL_SECRETS = (*SECRETS, ROTATED)

Setup = Callable[[HTTPServer, RabbitBroker, BrokerQueue, Certificates], tuple[list[str], int]]


def api_token(server: HTTPServer, certs: Certificates) -> list[str]:
    return [*api_args(server, certs)]


def wrong_token(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                certs: Certificates) -> tuple[list[str], int]:
    server.expect_request("/api/streams/amqp/v2").respond_with_json({"title": "no"}, status=401)
    server.expect_request("/api/accounts/profile").respond_with_json({"title": "no"}, status=401)
    return api_token(server, certs), 3


def not_integration(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                    certs: Certificates) -> tuple[list[str], int]:
    server.expect_request("/api/streams/amqp/v2").respond_with_json(
        {"title": f"forbidden for {TOKEN}"}, status=403)  # an API that echoes the token
    return api_token(server, certs), 4


def login_refused(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                  certs: Certificates) -> tuple[list[str], int]:
    server.expect_request("/api/accounts/login").respond_with_json(
        {"title": f"bad password {LOGIN_PASSWORD}"}, status=400)
    return ["--username", "partner@example.com", *api_args(server, certs)], 3


def api_not_json(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                 certs: Certificates) -> tuple[list[str], int]:
    server.expect_request("/api/streams/amqp/v2").respond_with_data(f"<html>{TOKEN}</html>")
    return api_token(server, certs), 7


def api_incomplete(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                   certs: Certificates) -> tuple[list[str], int]:
    server.expect_request("/api/streams/amqp/v2").respond_with_json(
        {"server": "localhost", "password": PASSWORD})
    return api_token(server, certs), 7


def api_unreachable(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                    certs: Certificates) -> tuple[list[str], int]:
    return ["--api-url", f"https://user:{LOGIN_PASSWORD}@localhost:{free_port()}"], 5


def api_server_error(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                     certs: Certificates) -> tuple[list[str], int]:
    server.expect_request("/api/streams/amqp/v2").respond_with_json(
        {"title": f"server fault for Bearer {TOKEN}"}, status=500)
    return api_token(server, certs), 7


def broker_login(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                 certs: Certificates) -> tuple[list[str], int]:
    server.expect_request("/api/streams/amqp/v2").respond_with_json(
        stream_details(rabbit, queue.name, password=ROTATED))
    return [*api_token(server, certs), "--no-reconnect"], 8


def broker_tls(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
               certs: Certificates) -> tuple[list[str], int]:
    return ["--amqp-url", rabbit.amqps_url(host="127.0.0.1"), "--queue", queue.name,
            "--ca-file", str(certs.ca_file)], 6


def broker_closed_port(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                       certs: Certificates) -> tuple[list[str], int]:
    return ["--amqp-url", f"amqps://{USER}:{PASSWORD}@localhost:{free_port()}/",
            "--queue", queue.name], 5


def missing_queue(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                  certs: Certificates) -> tuple[list[str], int]:
    server.expect_request("/api/streams/amqp/v2").respond_with_json(
        stream_details(rabbit, "Operator_absent.Q"))
    return api_token(server, certs), 9


def success(server: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
            certs: Certificates) -> tuple[list[str], int]:
    queue.publish("EHSEC001.O.120", json.dumps({"Timestamp": "2026-11-24T12:00:00Z",
                                                "Value": 1.5}))
    queue.publish("EHSEC001.O.999", "garbage")
    server.expect_request("/api/streams/amqp/v2").respond_with_json(
        stream_details(rabbit, queue.name))
    return [*api_token(server, certs), "--count", "2"], 0


@pytest.mark.parametrize("setup", [
    wrong_token, not_integration, login_refused, api_not_json, api_incomplete, api_unreachable,
    api_server_error, broker_login, broker_tls, broker_closed_port, missing_queue, success,
], ids=lambda setup: setup.__name__)
def test_no_secret_leaves_the_process(
    setup: Setup, cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker,
    queue: BrokerQueue, tmp_path: Path,
) -> None:
    args, expected = setup(httpserver, rabbit, queue, cli.certs)
    save = tmp_path / "save.jsonl"
    # the secrets come the usual ways: environment for the token and the login password
    env = clean_env(EASEE_TOKEN=TOKEN, EASEE_PASSWORD=LOGIN_PASSWORD)
    if "--username" in args:
        del env["EASEE_TOKEN"]
    result = cli.run(*args, "--jsonl", "--debug", "--save", str(save), env=env)
    assert result.returncode == expected, result.stderr[-2000:]
    assert "internal error" not in result.stderr  # (pika's debug log may carry its tracebacks)
    assert "easee-tail: debug:" in result.stderr or expected in (3, 4, 7)
    saved = save.read_text() if save.exists() else ""
    if expected == 0:
        assert saved.count("\n") == 2
    for text in (result.stdout, result.stderr, saved):
        for secret in ALL_SECRETS:
            assert secret not in text, f"{secret!r} leaked in: {text[-1500:]!r}"
