"""`easee-tail connection`: the details from the API, password masked unless asked for."""

from __future__ import annotations

import json

from pytest_httpserver import HTTPServer

from tests.conftest import TOKEN, BrokerQueue, Runner, api_args, clean_env
from tests.harness.rabbit import PASSWORD, USER, RabbitBroker


def test_connection_details_are_masked(cli: Runner, api: HTTPServer, queue: BrokerQueue) -> None:
    result = cli.run("connection", "--token", TOKEN, *api_args(api, cli.certs))
    assert result.returncode == 0, result.stderr
    assert f"queueName     {queue.name}" in result.stdout
    assert "password      ****" in result.stdout
    assert f"amqps://{USER}:****@localhost:" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr and TOKEN not in result.stderr


def test_connection_json_with_secrets_feeds_another_tool(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, rabbit: RabbitBroker
) -> None:
    result = cli.run("connection", "--json", "--show-secrets", *api_args(api, cli.certs),
                     env=clean_env(EASEE_TOKEN=TOKEN))
    assert result.returncode == 0, result.stderr
    details = json.loads(result.stdout)
    assert details["password"] == PASSWORD and details["useSsl"] is True
    assert "warning: --show-secrets" in result.stderr and PASSWORD not in result.stderr
    # the URL it prints is one easee-tail itself takes
    queue.publish("EHCONN01.O.109", '{"Timestamp": "2026-11-24T12:00:00Z", "Value": 3}')
    tailed = cli.run("--amqp-url", details["url"], "--queue", details["queueName"],
                     "--ca-file", str(cli.certs.ca_file), "--jsonl", "--count", "1")
    assert tailed.returncode == 0, tailed.stderr
    assert json.loads(tailed.stdout)["charger"] == "EHCONN01"


def test_connection_errors_are_the_usual_ones(cli: Runner, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json({}, status=403)
    result = cli.run("connection", "--token", TOKEN, *api_args(httpserver, cli.certs))
    assert result.returncode == 4
    assert "not of an integration" in result.stderr and TOKEN not in result.stderr
