"""A private rabbitmq-server on loopback: free ports, its own data dir, cookie and TLS listener.

Started from Debian's package files directly (not the service wrapper), so nothing on the
machine is shared with it. When it cannot start, `start` raises with its log: tests fail.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika

from tests.harness.certs import Certificates

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
# The start-up poll fails on purpose until the broker listens; pika would log every try.
logging.getLogger("pika").setLevel(logging.CRITICAL)

USER = "easee-test"
PASSWORD = "broker-secret-Zq81xv"  # a recognisable value: secret-leak tests look for it


LOWEST_PORT = 10_000
START_ATTEMPTS = 3  # a broker whose port was taken meanwhile starts again on others
_PICK = random.Random()  # its own: a test that seeds the module's generator changes nothing here


def _ephemeral_low() -> int:
    """Where the kernel's ports for outgoing connections begin (32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports free now, below the range the kernel gives outgoing
    connections: between this pick and a server's listen (seconds, for a broker), no
    connection the tests make can take one of them, as one did (eaddrinuse) with ports
    the kernel picked."""
    high = max(LOWEST_PORT + 1000, _ephemeral_low())
    probes: list[socket.socket] = []
    try:
        while len(probes) < count:
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", _PICK.randrange(LOWEST_PORT, high)))
            except OSError:
                probe.close()
                continue
            probes.append(probe)  # held until all are picked: no port twice
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port() -> int:
    return free_ports(1)[0]


class _PortTaken(Exception):
    pass


class RabbitBroker:
    def __init__(self, directory: Path, certs: Certificates) -> None:
        self.directory = directory
        self.certs = certs
        self.process: subprocess.Popen[bytes] | None = None
        self.log_dir = directory / "log"
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.amqp_port, self.amqps_port, self.dist_port = free_ports(3)
        self.node = f"easeetail{self.amqp_port}@localhost"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOME=str(self.directory / "home"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.directory / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_CONFIG_FILE=str(self.directory / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.directory / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.directory / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.directory / "rabbit.pid"),
            RABBITMQ_CONF_ENV_FILE=str(self.directory / "rabbitmq-env.conf"),
        )
        return env

    def start(self, timeout: float = 90.0) -> None:
        if not (RABBIT_BIN / "rabbitmq-server").exists():
            raise RuntimeError(
                "rabbitmq-server is not installed (apt-get install rabbitmq-server); "
                "scripts/test installs it"
            )
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start(timeout)
                return
            except _PortTaken:
                taken = self.log_tail()
                self._kill()
                if attempt == START_ATTEMPTS:
                    raise RuntimeError(f"rabbitmq-server found a port taken {attempt} times "
                                       f"(eaddrinuse):\n{taken}") from None
                # its logs are kept aside, and the next attempt's begin empty
                self.log_dir.rename(self.directory / f"log-port-taken-{attempt}")
                (self.directory / "stdout.log").rename(
                    self.directory / f"stdout-port-taken-{attempt}.log")
                self._pick_ports()

    def _start(self, timeout: float) -> None:
        for sub in ("home", "mnesia", "log"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")
        (self.directory / "advanced.config").write_text("[].\n")
        (self.directory / "rabbitmq.conf").write_text(
            "\n".join([
                f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
                f"listeners.ssl.default = 127.0.0.1:{self.amqps_port}",
                f"ssl_options.cacertfile = {self.certs.ca_file}",
                f"ssl_options.certfile = {self.certs.cert_file}",
                f"ssl_options.keyfile = {self.certs.key_file}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
                f"default_user = {USER}",
                f"default_pass = {PASSWORD}",
                "loopback_users = none",
                "log.console = false",
                "log.file.level = warning",
                "disk_free_limit.absolute = 50MB",
                "",
            ])
        )
        self.process = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env,
            stdout=open(self.directory / "stdout.log", "wb"),  # noqa: SIM115 - lives with the broker
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._port_taken():
                raise _PortTaken()
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.process.returncode}:\n"
                                   + self.log_tail())
            try:
                self.plain_connection().close()
            except pika.exceptions.AMQPError:
                time.sleep(0.3)
                continue
            # the TLS listener starts beside the plain one (when its port is taken, the
            # broker runs on without it: the log says eaddrinuse)
            if self._listens(self.amqps_port):
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"rabbitmq-server did not accept connections in {timeout:.0f} s:\n"
                           + self.log_tail())

    def _port_taken(self) -> bool:
        return any("eaddrinuse" in path.read_text(errors="replace")
                   for path in [self.directory / "stdout.log", *self.log_dir.glob("*.log")]
                   if path.exists())

    def _listens(self, port: int) -> bool:
        """The broker's TLS listener answers there (a handshake: not just anyone's socket)."""
        context = ssl.create_default_context(cafile=str(self.certs.ca_file))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                    context.wrap_socket(raw, server_hostname="localhost"):
                return True
        except OSError:  # refused, or no TLS: ssl.SSLError is an OSError
            return False

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        texts = []
        for path in [self.directory / "stdout.log", *sorted(self.log_dir.glob("*.log"))]:
            if path.exists():
                texts.append(f"--- {path.name}\n"
                             + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.ctl("stop", timeout=30)
            self.process.wait(timeout=30)
        except (subprocess.SubprocessError, OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        # epmd may stay behind; it is shared and harmless.

    def ctl(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=True,
        )
        return result.stdout

    def consumers(self, queue: str) -> list[tuple[str, str]]:
        """(channel pid, consumer tag) of each consumer of the queue."""
        listed = self.ctl("list_consumers", "-q", "queue_name", "channel_pid", "consumer_tag")
        return [(pid, tag) for name, pid, tag in
                (line.split("\t") for line in listed.splitlines() if line.count("\t") == 2)
                if name == queue]

    def cancel_consumers(self, queue: str) -> None:
        """The broker sends basic.cancel to each consumer of the queue, which stays: what a
        client sees when a queue's node fails over."""
        for pid, tag in self.consumers(queue):
            self.ctl("eval", f'rabbit_channel:send_command(rabbit_misc:string_to_pid("{pid}"), '
                             f"{{'basic.cancel', <<\"{tag}\">>, false}}).")

    def close_consumer_channels(self, queue: str, code: int, text: str) -> None:
        """The broker closes the channel of each consumer of the queue with a channel error,
        as its consumer_timeout does (406 PRECONDITION_FAILED)."""
        for pid, _tag in self.consumers(queue):
            self.ctl("eval", f'rabbit_channel:send_command(rabbit_misc:string_to_pid("{pid}"), '
                             f"{{'channel.close', {code}, <<\"{text}\">>, 0, 0}}).")

    def plain_connection(self) -> pika.BlockingConnection:
        """For the tests' own publishing and inspection (the product always uses TLS here)."""
        return pika.BlockingConnection(pika.ConnectionParameters(
            host="127.0.0.1", port=self.amqp_port,
            credentials=pika.PlainCredentials(USER, PASSWORD),
            connection_attempts=1, socket_timeout=5, blocked_connection_timeout=30,
        ))

    def amqps_url(self, user: str = USER, password: str = PASSWORD, host: str = "localhost") -> str:
        return f"amqps://{user}:{password}@{host}:{self.amqps_port}/"

    @contextmanager
    def channel(self) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
        connection = self.plain_connection()
        try:
            yield connection.channel()
        finally:
            if connection.is_open:
                connection.close()


def rabbit_available() -> bool:
    return (RABBIT_BIN / "rabbitmq-server").exists() and shutil.which("erl") is not None
