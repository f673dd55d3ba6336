"""Fixtures: a private RabbitMQ over TLS, an HTTP server playing the Easee API, the installed CLI.

No mocks: the product runs as a real process against real servers. A broker that cannot
start fails the session loudly.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import ssl
import struct
import subprocess
import termios
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest
from pytest_httpserver import HTTPServer

from tests.harness.certs import Certificates, make_certificates
from tests.harness.rabbit import PASSWORD, USER, RabbitBroker
from tests.harness.terminal import Terminal

TOKEN = "integration-token-S3cr3tAAAA"  # recognisable: leak checks look for these values
LOGIN_PASSWORD = "login-password-Pw9876zz"
SECRETS = (TOKEN, LOGIN_PASSWORD, PASSWORD)


@pytest.fixture(autouse=True)
def private_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own config and cache dirs: profiles and cached tokens never leak
    between tests, nor in from the machine's user."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[RabbitBroker]:
    broker = RabbitBroker(tmp_path_factory.mktemp("rabbit"), certs)
    broker.start()  # raises with the broker's log when it cannot start: the tests fail
    yield broker
    broker.stop()


@dataclass
class BrokerQueue:
    """A durable classic queue, as Easee provisions it, fed through a topic exchange so that
    deliveries carry real routing keys (`<serial>.O.<id>`)."""

    name: str
    exchange: str
    broker: RabbitBroker

    def publish(self, routing_key: str, body: bytes | str,
                headers: Mapping[str, object] | None = None) -> None:
        self.publish_many([(routing_key, body, headers)])

    def publish_many(
        self, messages: Sequence[tuple[str, bytes | str, Mapping[str, object] | None]]
    ) -> None:
        with self.broker.channel() as channel:
            channel.confirm_delivery()
            for routing_key, body, headers in messages:
                channel.basic_publish(
                    self.exchange, routing_key,
                    body.encode() if isinstance(body, str) else body,
                    pika.BasicProperties(headers=dict(headers) if headers else None,
                                         delivery_mode=2),
                )

    def consumer_count(self) -> int:
        with self.broker.channel() as channel:
            count: int = channel.queue_declare(self.name, passive=True).method.consumer_count
            return count

    def wait_for_consumers(self, count: int, timeout: float = 30) -> None:
        """Wait for the sign that a consumer is attached (or has left)."""
        deadline = time.monotonic() + timeout
        while self.consumer_count() != count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never had {count} consumer(s)")
            time.sleep(0.1)

    def drain(self) -> list[bytes]:
        """Take every ready message out of the queue (acknowledged): what was left."""
        bodies: list[bytes] = []
        with self.broker.channel() as channel:
            while True:
                method, _properties, body = channel.basic_get(self.name, auto_ack=True)
                if method is None:
                    return bodies
                bodies.append(body)

    def depth(self) -> int:
        """Messages ready in the queue (not counting ones a live consumer holds)."""
        with self.broker.channel() as channel:
            count: int = channel.queue_declare(self.name, passive=True).method.message_count
            return count


@pytest.fixture
def queue(rabbit: RabbitBroker) -> Iterator[BrokerQueue]:
    name = f"Operator_{uuid.uuid4().hex[:8]}.Q"
    exchange = name.replace(".Q", ".O.X")
    with rabbit.channel() as channel:
        channel.queue_declare(name, durable=True)
        channel.exchange_declare(exchange, "topic", durable=True)
        channel.queue_bind(name, exchange, "#")
    yield BrokerQueue(name, exchange, rabbit)
    with rabbit.channel() as channel:
        channel.queue_delete(name)
        channel.exchange_delete(exchange)


def stream_details(rabbit: RabbitBroker, queue: str, **overrides: Any) -> dict[str, Any]:
    reply = {
        "server": "localhost", "port": rabbit.amqps_port, "useSsl": True, "virtualHost": "/",
        "queueName": queue, "exchangeName": queue.replace(".Q", ".C.X"),
        "username": USER, "password": PASSWORD,
    }
    reply.update(overrides)
    return reply


@pytest.fixture
def api(httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue) -> HTTPServer:
    """The Easee API, answering the stream endpoint for TOKEN with the test queue."""
    httpserver.expect_request(
        "/api/streams/amqp/v2", method="GET", headers={"Authorization": f"Bearer {TOKEN}"},
    ).respond_with_json(stream_details(rabbit, queue.name))
    return httpserver


@pytest.fixture(scope="session")
def https_api(certs: Certificates) -> Iterator[HTTPServer]:
    """A second Easee API, over TLS with this run's certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs.cert_file), str(certs.key_file))
    server = HTTPServer(host="localhost", port=0, ssl_context=context)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture(scope="session")
def easee_tail() -> str:
    path = shutil.which("easee-tail")
    if path is None:
        raise RuntimeError("the easee-tail console script is not installed (pip install -e .)")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("EASEE_")}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="0", **extra)
    return env


@dataclass
class Runner:
    executable: str
    certs: Certificates

    def run(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.executable, *args], capture_output=True, text=True, timeout=timeout,
            env=dict(env) if env is not None else clean_env(),
            stdin=subprocess.DEVNULL if input is None else None, input=input,
        )

    def popen(self, *args: str, env: Mapping[str, str] | None = None,
              stdout: int | None = subprocess.PIPE) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [self.executable, *args], stdout=stdout, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL, env=dict(env) if env is not None else clean_env(),
        )


@pytest.fixture
def cli(easee_tail: str, certs: Certificates) -> Runner:
    return Runner(easee_tail, certs)


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked: {text!r}"


def api_args(server: HTTPServer, certs: Certificates) -> list[str]:
    return ["--api-url", server.url_for("").rstrip("/"), "--ca-file", str(certs.ca_file)]


def free_closed_port() -> int:
    from tests.harness.rabbit import free_port
    return free_port()


def path_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def signal_and_wait(process: subprocess.Popen[str], signum: int) -> tuple[int, float, str]:
    """Send the signal; the exit code, the seconds it took to exit, and stderr (clean)."""
    sent = time.monotonic()
    process.send_signal(signum)
    code = process.wait(timeout=10)
    took = time.monotonic() - sent
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert "Traceback" not in stderr and "internal error" not in stderr
    return code, took, stderr


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    """Start a command in a fresh terminal (tmux) of width x height, 120 x 30 unless told."""
    opened: list[Terminal] = []

    def start(command: list[str], width: int = 120, height: int = 30) -> Terminal:
        screen = Terminal.open(width, height)
        opened.append(screen)
        screen.run(command)
        return screen

    yield start
    for screen in opened:
        screen.close()


class Lines:
    """A stream of a running process read line by line in a thread, so that a test can wait
    for a line as the sign of a state (never a fixed sleep)."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"never saw {text!r} in:\n{''.join(self.lines)}")
                self._changed.wait(left)

    @property
    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


def pipe_fill(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD on its read end)."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


def wait_for_full_pipe(fd: int, timeout: float = 30) -> None:
    """The sign that the writer of the pipe is held up: the pipe holds most of its 64 KiB.
    (easee-tail writes whole lines of up to 4 KiB into each of the pipe's 16 pages, so a
    full pipe holds some 57 KiB of 250-byte lines, not 64.)"""
    deadline = time.monotonic() + timeout
    while pipe_fill(fd) < 48_000:
        if time.monotonic() > deadline:
            raise AssertionError(f"the pipe never filled ({pipe_fill(fd)} bytes)")
        time.sleep(0.05)
