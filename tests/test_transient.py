"""Faults that pass by themselves are ridden through, never the end of a long run: a TLS
handshake cut short while the path comes back, an API that answers 503 or 429 while fresh
details are fetched, a re-login needed hours after the password was typed."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import (
    LOGIN_PASSWORD,
    TOKEN,
    BrokerQueue,
    Lines,
    Runner,
    api_args,
    assert_no_secrets,
    stream_details,
)
from tests.harness.proxy import TcpProxy
from tests.harness.rabbit import PASSWORD, USER, RabbitBroker
from tests.harness.terminal import Terminal
from tests.test_reliability import close_connections, numbered, saved_records, values, wait_for


def test_a_tls_handshake_cut_short_while_reconnecting_is_retried(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    proxy = TcpProxy(rabbit.amqps_port)
    save = tmp_path / "save.jsonl"
    try:
        queue.publish_many(numbered(0, 10))
        url = f"amqps://{USER}:{PASSWORD}@localhost:{proxy.port}/"
        process = cli.popen("--amqp-url", url, "--queue", queue.name, "--ca-file",
                            str(cli.certs.ca_file), "--jsonl", "--save", str(save),
                            stdout=subprocess.DEVNULL)
        assert process.stderr is not None
        stderr = Lines(process.stderr)
        wait_for(lambda: len(saved_records(save)) >= 10, "the first 10 lines")
        proxy.hang_up_in_handshake()
        proxy.cut()
        stderr.wait_for("the TLS handshake with the broker")
        proxy.hang_up_in_handshake(False)
        stderr.wait_for("reconnected")
        queue.publish_many(numbered(10, 20))
        # every value at least once (a batch whose ack the cut caught comes again, marked)
        wait_for(lambda: set(values(saved_records(save))) >= set(range(20)),
                 "all 20 values saved", 60)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        proxy.close()
    assert code == 143, stderr.text
    seen: set[int] = set()
    for record in saved_records(save):  # a value's second copy is marked redelivered
        assert record["redelivered"] or record["value"] not in seen, record
        seen.add(record["value"])


def test_a_busy_api_while_fetching_fresh_details_is_waited_out(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, httpserver: HTTPServer,
    tmp_path: Path,
) -> None:
    """The broker password is rotated; the API answers 503 (retried with the backoff), then
    429 with Retry-After (waited out as told), then the new details. easee-tail carries on
    (it used to exit 7)."""
    user, first, rotated = "easee-busy-api", "first-Secret-Bb42", "rotated-Secret-Cc17"
    rabbit.ctl("add_user", user, first)
    rabbit.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    asked: list[float] = []
    replies = [
        Response(status=200, response=json.dumps(stream_details(rabbit, queue.name, username=user,
                                                           password=first))),
        Response(status=503, response='{"title": "maintenance"}', headers={"Retry-After": "1"}),
        Response(status=429, response='{"title": "slow down"}', headers={"Retry-After": "2"}),
        Response(status=200, response=json.dumps(stream_details(rabbit, queue.name, username=user,
                                                           password=rotated))),
    ]

    def answer(_request: Request) -> Response:
        asked.append(time.monotonic())
        reply = replies[min(len(asked), len(replies)) - 1]
        reply.content_type = "application/json"
        return reply

    httpserver.expect_request("/api/streams/amqp/v2").respond_with_handler(answer)
    save = tmp_path / "save.jsonl"
    queue.publish_many(numbered(0, 10))
    process = cli.popen("--token", TOKEN, *api_args(httpserver, cli.certs), "--jsonl",
                        "--save", str(save), "--count", "20", stdout=subprocess.DEVNULL)
    assert process.stderr is not None
    stderr = Lines(process.stderr)
    try:
        wait_for(lambda: len(saved_records(save)) >= 10, "the first 10 lines")
        rabbit.ctl("change_password", user, rotated)
        close_connections(rabbit)
        stderr.wait_for("reconnected", timeout=60)
        queue.publish_many(numbered(10, 20))
        code = process.wait(timeout=60)
    finally:
        rabbit.ctl("delete_user", user)
    assert code == 0, stderr.text
    assert set(values(saved_records(save))) == set(range(20))
    assert "answered 503: maintenance" in stderr.text
    assert "the Easee API asks this client to wait 2 s (429); waiting" in stderr.text
    assert len(asked) == 4
    assert asked[3] - asked[2] >= 2.0  # never sooner than Retry-After said
    assert_no_secrets(stderr.text)


def test_a_relogin_mid_run_uses_the_password_typed_at_the_start(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, httpserver: HTTPServer,
    terminal: Callable[..., Terminal],
) -> None:
    """The password was typed at the prompt; hours later the broker password rotates and the
    access token has expired: easee-tail logs in again with the password it kept in memory
    (it used to exit 2, "needs a password")."""
    user, first, rotated = "easee-relogin", "first-Secret-Dd42", "rotated-Secret-Ee17"
    rabbit.ctl("add_user", user, first)
    rabbit.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    login = {"userName": "partner@example.com", "password": LOGIN_PASSWORD}
    httpserver.expect_oneshot_request("/api/accounts/login", method="POST", json=login
                                      ).respond_with_json({"accessToken": "access-one-Qq"})
    httpserver.expect_oneshot_request("/api/accounts/login", method="POST", json=login
                                      ).respond_with_json({"accessToken": "access-two-Ww"})
    httpserver.expect_oneshot_request(
        "/api/streams/amqp/v2", headers={"Authorization": "Bearer access-one-Qq"},
    ).respond_with_json(stream_details(rabbit, queue.name, username=user, password=first))
    for path in ("/api/streams/amqp/v2", "/api/accounts/profile"):
        httpserver.expect_request(path, headers={"Authorization": "Bearer access-one-Qq"},
                                  ).respond_with_json({"title": "token expired"}, status=401)
    httpserver.expect_request(
        "/api/streams/amqp/v2", headers={"Authorization": "Bearer access-two-Ww"},
    ).respond_with_json(stream_details(rabbit, queue.name, username=user, password=rotated))
    queue.publish("EHRELOG1.O.109", '{"Value": 3}')
    try:
        screen = terminal([cli.executable, "--username", "partner@example.com",
                           *api_args(httpserver, cli.certs), "--count", "2"])
        screen.wait_for(lambda s: "Easee password for partner@example.com" in s)
        screen.press(LOGIN_PASSWORD, "Enter")
        screen.wait_for(lambda s: "EHRELOG1" in s)
        rabbit.ctl("change_password", user, rotated)
        close_connections(rabbit)
        screen.wait_for(lambda s: "reconnected" in s, timeout=60)
        queue.publish("EHRELOG2.O.109", '{"Value": 6}')
        shown = screen.wait_for(lambda s: "EXIT=" in s, timeout=30)
    finally:
        rabbit.ctl("delete_user", user)
    assert "EXIT=0" in shown, shown
    logins = [request for request, _ in httpserver.log if request.path == "/api/accounts/login"]
    assert len(logins) == 2
    assert LOGIN_PASSWORD not in shown
