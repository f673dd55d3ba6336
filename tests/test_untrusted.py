"""The API, the broker and the data are untrusted: no secret in clear, no terminal
injection, no unbounded wait or read, no queue destroyed by looking at it. Each attack is
reproduced by a small misbehaving server or a real queue of the kind on the test broker."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from easee_tail.text import visible
from tests.conftest import (
    LOGIN_PASSWORD,
    TOKEN,
    BrokerQueue,
    Runner,
    api_args,
    assert_no_secrets,
    clean_env,
    stream_details,
)
from tests.harness.rabbit import RabbitBroker
from tests.harness.terminal import Terminal

STAMP = "2026-11-26T10:00:00Z"
HOSTILE = "EH\x1b]0;OWNED\x07\x1b[2J\u202e"


# -- one function makes control characters visible -------------------------------------------

@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b]0;OWNED\x07", "\\x1b]0;OWNED\\x07"),  # C0: ESC, BEL
    ("a\x00b\x1fc\td", "a\\x00b\\x1fc\\x09d"),
    ("del\x7f", "del\\x7f"),
    ("\x85\x9b31m", "\\x85\\x9b31m"),  # C1: NEL, CSI
    ("evil\u202egnp.exe", "evil\\u202egnp.exe"),  # a bidi override
    ("\u2066iso\u2069 \u200f", "\\u2066iso\\u2069 \\u200f"),
    ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ("line\u2028sep", "line\\u2028sep"),
    ("Störung 東京 ⚡ kWh", "Störung 東京 ⚡ kWh"),  # printable text is left alone
    ("", ""),
])
def test_visible_escapes_every_character_that_can_steer_a_terminal(text: str, shown: str
                                                                    ) -> None:
    assert visible(text) == shown


# -- secrets never follow a redirect ---------------------------------------------------------

def tcp_server(handle: Callable[[socket.socket], None]) -> socket.socket:
    """A loopback server that hands each connection to `handle` in a thread of its own."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(client,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server


@pytest.fixture
def catcher() -> Iterator[tuple[int, list[bytes]]]:
    """A plain TCP server that records whatever reaches it: where a leaked password lands."""
    caught: list[bytes] = []

    def record(client: socket.socket) -> None:
        client.settimeout(2)
        try:
            caught.append(client.recv(65536))
        except OSError:
            caught.append(b"")
        client.close()

    server = tcp_server(record)
    yield server.getsockname()[1], caught
    server.close()


@pytest.mark.parametrize("elsewhere", ["http://127.0.0.1:{port}/api/accounts/login",
                                       "https://127.0.0.1:{port}/api/accounts/login"])
def test_a_login_redirected_elsewhere_is_not_followed_with_the_password(
    cli: Runner, https_api: HTTPServer, catcher: tuple[int, list[bytes]], elsewhere: str
) -> None:
    port, caught = catcher
    target = elsewhere.format(port=port)
    https_api.expect_request("/api/accounts/login", method="POST").respond_with_data(
        "", status=307, headers={"Location": target})
    result = cli.run("--username", "partner@example.com", "--api-url",
                     https_api.url_for("").rstrip("/"), "--ca-file", str(cli.certs.ca_file),
                     env=clean_env(EASEE_PASSWORD=LOGIN_PASSWORD))
    https_api.clear()
    assert result.returncode == 7, result.stderr
    assert f"redirected to {target}" in result.stderr and "not followed" in result.stderr
    assert caught == []  # nothing, not even a connection, reached the other server
    assert_no_secrets(result.stdout, result.stderr)


def test_a_redirect_on_the_same_origin_is_followed(
    cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_data(
        "", status=307, headers={"Location": "/api/streams/amqp/v2/moved"})
    httpserver.expect_request("/api/streams/amqp/v2/moved",
                              headers={"Authorization": f"Bearer {TOKEN}"}
                              ).respond_with_json(stream_details(rabbit, queue.name))
    queue.publish("EHREDIR1.O.120", json.dumps({"Timestamp": STAMP, "Value": 1.5}))
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs), "--jsonl",
                     "--count", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["value"] == 1.5


def test_a_plain_http_api_is_warned_about_unless_it_is_loopback(
    cli: Runner, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json({}, status=403)
    local = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs))
    assert "plain http" not in local.stderr
    remote = cli.run("--token", TOKEN, "--api-url", "http://192.0.2.1:9", timeout=60)
    assert "warning: --api-url http://192.0.2.1:9 is plain http: the token and the login " \
           "password travel unencrypted" in remote.stderr
    assert remote.returncode == 5
    for bad in ("ftp://x", "notaurl"):
        refused = cli.run("--token", TOKEN, "--api-url", bad)
        assert refused.returncode == 2 and "is not an http(s):// URL" in refused.stderr


# -- bounded in time and size ----------------------------------------------------------------

@pytest.fixture
def raw_http() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server written by hand, to misbehave: the test sets its behaviour."""
    mode: list[str] = []

    def handle(client: socket.socket) -> None:
        try:
            client.recv(65536)
            if mode[0] == "trickle":  # headers at once, then a byte every 3 s
                client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 100000\r\n\r\n")
                for _ in range(100):
                    client.sendall(b" ")
                    time.sleep(3)
            elif mode[0] == "flood":  # a 1 GB reply, as fast as it is taken
                client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 1073741824\r\n\r\n")
                block = b"[" * 65536
                for _ in range(16384):
                    client.sendall(block)
        except OSError:
            pass
        finally:
            client.close()

    server = tcp_server(handle)
    yield server.getsockname()[1], mode
    server.close()


def test_a_trickling_reply_is_cut_at_the_total_deadline(
    cli: Runner, raw_http: tuple[int, list[str]]
) -> None:
    port, mode = raw_http
    mode.append("trickle")
    started = time.monotonic()
    result = cli.run("--token", TOKEN, "--api-url", f"http://127.0.0.1:{port}", timeout=120)
    took = time.monotonic() - started
    print(f"\ntrickling API given up after {took:.1f} s")
    assert result.returncode == 5, result.stderr
    assert "did not answer within 20 s" in result.stderr
    assert took < 40  # 20 s and start-up, not the 300 s the trickle would take


# Runs a command and reports its peak RSS: a small parent, so that the child's figure is
# its own (a child forked from pytest starts out counting pytest's pages).
PEAK_RSS = """
import os, resource, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_pid, status, usage = os.wait4(pid, 0)
print(f"PEAK_RSS_KIB={usage.ru_maxrss}", file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_huge_reply_is_refused_at_one_megabyte(
    cli: Runner, raw_http: tuple[int, list[str]]
) -> None:
    port, mode = raw_http
    mode.append("flood")
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, cli.executable, "--token", TOKEN,
         "--api-url", f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=120, env=clean_env(), stdin=subprocess.DEVNULL)
    assert result.returncode == 7, result.stderr
    assert "answered more than 1 MB" in result.stderr
    peak = int(result.stderr.rsplit("PEAK_RSS_KIB=", 1)[1])
    print(f"\npeak RSS {peak / 1024:.0f} MB")
    assert peak < 200 * 1024  # KiB: the 1 GB reply was never read whole


def rate_limited_once(httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
                      retry_after: int) -> list[float]:
    """The stream endpoint answers 429 with Retry-After once, then the details; the times
    it was asked at."""
    asked: list[float] = []

    def limited(_request: Request) -> Response:
        asked.append(time.monotonic())
        if len(asked) == 1:
            return Response("{}", status=429, headers={"Retry-After": str(retry_after)})
        return Response(json.dumps(stream_details(rabbit, queue.name)),
                        content_type="application/json")

    httpserver.expect_request("/api/streams/amqp/v2").respond_with_handler(limited)
    return asked


def test_a_short_rate_limit_at_start_is_waited_out_a_long_one_explained(
    cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    asked = rate_limited_once(httpserver, rabbit, queue, 2)
    queue.publish("EHLIMIT1.O.120", json.dumps({"Timestamp": STAMP, "Value": 1.5}))
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs), "--jsonl",
                     "--count", "1")
    assert result.returncode == 0, result.stderr
    assert "the Easee API asks this client to wait 2 s (429); waiting" in result.stderr
    assert asked[1] - asked[0] >= 2.0
    httpserver.clear()
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_data(
        "", status=429, headers={"Retry-After": "3600"})
    long = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs))
    assert long.returncode == 7 and "retry after 3600 s" in long.stderr


# -- text from outside never reaches the terminal raw ----------------------------------------

def test_an_api_error_title_is_shown_with_its_controls_visible(
    cli: Runner, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        {"title": HOSTILE}, status=403)
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs))
    assert result.returncode == 4
    assert "EH\\x1b]0;OWNED\\x07\\x1b[2J\\u202e" in result.stderr
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr


def test_connection_and_doctor_show_hostile_details_visibly(
    cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        stream_details(rabbit, queue.name, virtualHost=HOSTILE,
                       exchangeName=f"X{HOSTILE}"))
    shown = cli.run("connection", "--token", TOKEN, *api_args(httpserver, cli.certs))
    assert shown.returncode == 0, shown.stderr
    assert "EH\\x1b]0;OWNED" in shown.stdout and "\x1b" not in shown.stdout
    doctor = cli.run("doctor", "--token", TOKEN, *api_args(httpserver, cli.certs))
    assert "\x1b" not in doctor.stdout + doctor.stderr
    assert "\u202e" not in doctor.stdout + doctor.stderr


# -- queues that are not what the tool assumes -----------------------------------------------

@pytest.fixture
def special_queue(rabbit: RabbitBroker, request: pytest.FixtureRequest) -> Iterator[str]:
    kind = request.param
    name = f"Operator_{kind}_{os.getpid()}_{time.monotonic_ns()}.Q"
    with rabbit.channel() as channel:
        channel.queue_declare(name, durable=True, arguments={"x-queue-type": kind})
        channel.exchange_declare(f"{name}.X", "topic", durable=True)
        channel.queue_bind(name, f"{name}.X", "#")
    yield name
    with rabbit.channel() as channel:
        channel.queue_delete(name)
        channel.exchange_delete(f"{name}.X")


def _publish(rabbit: RabbitBroker, queue: str, count: int) -> None:
    with rabbit.channel() as channel:
        channel.confirm_delivery()
        for number in range(count):
            channel.basic_publish(f"{queue}.X", "EHSPECIAL.O.120",
                                  json.dumps({"Timestamp": STAMP, "Value": number}))


def _ready(rabbit: RabbitBroker, queue: str) -> int:
    with rabbit.channel() as channel:
        return int(channel.queue_declare(queue, passive=True).method.message_count)


@pytest.mark.parametrize("special_queue", ["quorum"], indirect=True)
def test_peek_on_a_quorum_queue_stops_before_it_destroys_anything(
    cli: Runner, rabbit: RabbitBroker, special_queue: str
) -> None:
    _publish(rabbit, special_queue, 50)
    result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", special_queue,
                     "--ca-file", str(cli.certs.ca_file), "--peek", "--jsonl", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "it is a quorum queue" in result.stderr
    shown = [json.loads(line)["value"] for line in result.stdout.splitlines()]
    assert len(shown) == len(set(shown)) <= 50  # each at most once: it stopped at the first
    # message that came back counted
    deadline = time.monotonic() + 30
    while _ready(rabbit, special_queue) != 50:  # all back, none dropped
        assert time.monotonic() < deadline, _ready(rabbit, special_queue)
        time.sleep(0.1)


@pytest.mark.parametrize("special_queue", ["stream"], indirect=True)
def test_a_stream_queue_is_read_from_the_first_message_when_asked(
    cli: Runner, rabbit: RabbitBroker, special_queue: str
) -> None:
    _publish(rabbit, special_queue, 20)
    result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", special_queue,
                     "--ca-file", str(cli.certs.ca_file), "--stream-offset", "first",
                     "--jsonl", "--count", "20", timeout=60)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["value"] for line in result.stdout.splitlines()] \
        == list(range(20))


def test_an_exclusive_queue_of_another_connection_is_in_use_not_missing(
    cli: Runner, rabbit: RabbitBroker, tmp_path: Path
) -> None:
    connection = rabbit.plain_connection()
    try:
        name = connection.channel().queue_declare("", exclusive=True).method.queue
        result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", name,
                         "--ca-file", str(cli.certs.ca_file), "--jsonl")
    finally:
        connection.close()
    assert result.returncode == 10, result.stderr
    assert "in use by another connection" in result.stderr
    assert "does not exist" not in result.stderr


def test_a_short_rate_limit_counts_down_on_a_terminal(
    cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue,
    terminal: Callable[..., Terminal],
) -> None:
    rate_limited_once(httpserver, rabbit, queue, 4)
    queue.publish("EHCOUNT1.O.120", json.dumps({"Timestamp": STAMP, "Value": 1.5}))
    screen = terminal([cli.executable, "--token", TOKEN, *api_args(httpserver, cli.certs),
                       "--count", "1"])
    screen.wait_for(lambda text: re.search(r"wait 4 s \(429\); waiting: [1-4] s", text)
                    is not None)
    shown = screen.wait_for(lambda text: "EXIT=" in text, timeout=30)
    assert "EXIT=0" in shown and "EHCOUNT1" in shown
