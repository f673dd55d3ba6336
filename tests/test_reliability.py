"""Faults provoked for real on the test broker: restarts, forced closes, rotated passwords,
an expiring token, a full disk. Nothing may be lost; what comes twice is marked redelivered."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import (
    LOGIN_PASSWORD,
    TOKEN,
    BrokerQueue,
    Runner,
    api_args,
    assert_no_secrets,
    stream_details,
    wait_for_full_pipe,
)
from tests.harness.proxy import TcpProxy
from tests.harness.rabbit import PASSWORD, USER, RabbitBroker


def numbered(start: int, stop: int) -> list[tuple[str, str, None]]:
    return [("EHREL001.O.120",
             json.dumps({"Timestamp": "2026-11-24T12:00:00Z", "Value": float(n)}), None)
            for n in range(start, stop)]


def saved_records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines()]


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def values(records: list[dict[str, Any]]) -> list[int]:
    return [int(record["value"]) for record in records]


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    code = process.wait(timeout=timeout)
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert "Traceback" not in stderr
    return code, stderr


def stop_when_saved(process: subprocess.Popen[str], save: Path, expected: set[int],
                    timeout: float = 60) -> tuple[int, str]:
    """Wait for the sign that every value of `expected` is saved, at least once, then stop
    the run with SIGTERM (exit 143): its code and stderr. A cut lands at any moment, so a
    batch written but whose ack was in flight comes again, marked redelivered: a --count
    would end the run on those copies before the last values came."""
    wait_for(lambda: expected <= set(values(saved_records(save))),
             f"all {len(expected)} values saved", timeout)
    process.send_signal(signal.SIGTERM)
    return finish(process, timeout)


def close_connections(rabbit: RabbitBroker) -> None:
    rabbit.ctl("close_all_connections", "closed by the test")


def test_broker_restart_reconnects_and_loses_nothing(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    save = tmp_path / "save.jsonl"
    queue.publish_many(numbered(0, 50))
    process = cli.popen("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                        "--ca-file", str(cli.certs.ca_file), "--jsonl", "--save", str(save),
                        "--count", "150", stdout=subprocess.DEVNULL)
    wait_for(lambda: len(saved_records(save)) >= 50, "the first 50 lines")
    rabbit.ctl("stop_app")
    rabbit.ctl("start_app")
    queue.publish_many(numbered(50, 150))
    code, stderr = finish(process)
    assert code == 0, stderr
    assert "reconnecting (attempt 1, next in" in stderr
    assert "reconnected to amqps://" in stderr
    assert set(values(saved_records(save))) == set(range(150))  # every message, at least once
    assert queue.depth() == 0


def test_forced_close_while_a_batch_is_unacked_redelivers_it_marked(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    """stdout is a pipe nobody reads for a while: easee-tail blocks writing, holding
    unacknowledged deliveries. The connection is closed under it; once the reader drains the
    pipe, those lines are out but their ack cannot be, so the broker delivers them again."""
    total = 3000
    queue.publish_many(numbered(0, total))
    process = cli.popen("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                        "--ca-file", str(cli.certs.ca_file), "--jsonl", "--prefetch", "500")
    assert process.stdout is not None
    wait_for_full_pipe(process.stdout.fileno())  # the sign: it blocks writing
    close_connections(rabbit)
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    seen: set[int] = set()
    while len(seen) < total and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        record = json.loads(line)
        received.append(record)
        seen.add(int(record["value"]))
    process.terminate()
    code, stderr = finish(process)
    assert code == 143, stderr
    assert seen == set(range(total))
    counts: dict[int, int] = {}
    for record in received:
        counts[int(record["value"])] = counts.get(int(record["value"]), 0) + 1
    twice = [n for n, count in counts.items() if count > 1]
    assert twice, "the unacknowledged batch should have come again"
    for n in twice:
        again = [record for record in received if int(record["value"]) == n][1:]
        assert all(record["redelivered"] for record in again)
    assert "reconnected" in stderr


def test_no_reconnect_exits_12_on_a_forced_close(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    process = cli.popen("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                        "--ca-file", str(cli.certs.ca_file), "--jsonl", "--no-reconnect")
    wait_for(lambda: queue_consumers(rabbit, queue) == 1, "easee-tail to consume")
    close_connections(rabbit)
    code, stderr = finish(process, timeout=10)
    assert code == 12
    assert stderr.strip().splitlines()[-1].startswith("easee-tail: error: the connection to")
    assert PASSWORD not in stderr


def test_max_retries_gives_up_with_12_while_the_broker_stays_down(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    process = cli.popen("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                        "--ca-file", str(cli.certs.ca_file), "--jsonl", "--max-retries", "2")
    wait_for(lambda: queue_consumers(rabbit, queue) == 1, "easee-tail to consume")
    rabbit.ctl("stop_app")
    try:
        code, stderr = finish(process, timeout=30)
    finally:
        rabbit.ctl("start_app")
    assert code == 12
    assert "reconnecting (attempt 2, next in" in stderr
    assert "gave up after 2 reconnection attempts" in stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("refresh_works", [True, False], ids=["refresh", "login-again"])
def test_rotated_broker_password_is_fetched_again_with_a_renewed_token(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, httpserver: HTTPServer,
    tmp_path: Path, refresh_works: bool,
) -> None:
    """Easee rotates the broker password and the access token expires meanwhile: easee-tail
    must renew the token (refresh it, or log in again when the refresh is refused), fetch the
    new details, and carry on. (A broker user of its own, so that the test can still publish
    with the usual one.)"""
    user, first, rotated = "easee-rotating", "first-Secret-Kk42", "rotated-Secret-Jj17"
    rabbit.ctl("add_user", user, first)
    rabbit.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    httpserver.expect_oneshot_request("/api/accounts/login", method="POST").respond_with_json(
        {"accessToken": "access-one-Qq", "refreshToken": "refresh-one-Rr", "expiresIn": 3600})
    httpserver.expect_oneshot_request("/api/accounts/login", method="POST").respond_with_json(
        {"accessToken": "access-two-Ww", "refreshToken": "refresh-two-Tt", "expiresIn": 3600})
    httpserver.expect_oneshot_request(
        "/api/streams/amqp/v2", headers={"Authorization": "Bearer access-one-Qq"},
    ).respond_with_json(stream_details(rabbit, queue.name, username=user, password=first))
    httpserver.expect_request(
        "/api/streams/amqp/v2", headers={"Authorization": "Bearer access-one-Qq"},
    ).respond_with_json({"title": "token expired"}, status=401)
    httpserver.expect_request(
        "/api/accounts/profile", headers={"Authorization": "Bearer access-one-Qq"},
    ).respond_with_json({"title": "token expired"}, status=401)
    refresh = httpserver.expect_request(
        "/api/accounts/refresh_token", method="POST",
        json={"accessToken": "access-one-Qq", "refreshToken": "refresh-one-Rr"})
    if refresh_works:
        refresh.respond_with_json(
            {"accessToken": "access-two-Ww", "refreshToken": "refresh-two-Tt"})
    else:
        refresh.respond_with_json({"title": "refresh token already used"}, status=400)
    httpserver.expect_request(
        "/api/streams/amqp/v2", headers={"Authorization": "Bearer access-two-Ww"},
    ).respond_with_json(stream_details(rabbit, queue.name, username=user, password=rotated))

    save = tmp_path / "save.jsonl"
    queue.publish_many(numbered(0, 10))
    process = cli.popen("--username", "partner@example.com", "--password", LOGIN_PASSWORD,
                        *api_args(httpserver, cli.certs), "--jsonl", "--save", str(save),
                        stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(saved_records(save)) >= 10, "the first 10 lines")
        rabbit.ctl("change_password", user, rotated)
        close_connections(rabbit)
        queue.publish_many(numbered(10, 20))
        code, stderr = stop_when_saved(process, save, set(range(20)))
    finally:
        rabbit.ctl("delete_user", user)
    assert code == 143, stderr
    assert set(values(saved_records(save))) == set(range(20))
    assert "refused the AMQP login" in stderr and "reconnected" in stderr
    logins = [request for request, _ in httpserver.log if request.path == "/api/accounts/login"]
    assert len(logins) == (1 if refresh_works else 2)
    assert_no_secrets(stderr, save.read_text())
    for secret in (first, rotated, "access-one-Qq", "refresh-one-Rr", "access-two-Ww",
                   "refresh-two-Tt"):
        assert secret not in stderr


def test_an_expired_token_given_with_token_is_a_clear_error(
    cli: Runner, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        {"title": "token expired"}, status=401)
    httpserver.expect_request("/api/accounts/profile").respond_with_json(
        {"title": "token expired"}, status=401)
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs), "--jsonl")
    assert result.returncode == 3
    assert "rejected the token given with --token" in result.stderr
    assert "--username" in result.stderr
    assert_no_secrets(result.stderr)


def test_a_full_disk_is_an_error_and_nothing_is_acked(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    queue.publish_many(numbered(0, 30))
    result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                     "--ca-file", str(cli.certs.ca_file), "--jsonl", "--save", "/dev/full",
                     "--count", "30")
    assert result.returncode == 11
    assert result.stderr.strip().splitlines()[-1] == (
        "easee-tail: error: cannot write to /dev/full: No space left on device")
    assert queue.depth() == 30  # not written, so not acknowledged: all still queued


@pytest.mark.parametrize("fsync", [False, True])
def test_save_with_and_without_fsync_keeps_every_line(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path, fsync: bool
) -> None:
    save = tmp_path / "save.jsonl"
    queue.publish_many(numbered(0, 200))
    result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                     "--ca-file", str(cli.certs.ca_file), "--jsonl", "--save", str(save),
                     "--count", "200", *(["--fsync"] if fsync else []))
    assert result.returncode == 0, result.stderr
    assert values(saved_records(save)) == list(range(200))
    assert oct(save.stat().st_mode & 0o777) == "0o600"


def test_fsync_without_save_is_a_usage_error(cli: Runner) -> None:
    result = cli.run("demo", "--fsync", "--count", "1")
    assert result.returncode == 2
    assert "--fsync goes with --save" in result.stderr


def test_a_slow_reader_holds_back_the_broker_through_the_prefetch_window(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    """Backpressure: nobody reads stdout, so easee-tail blocks; the broker may not hand it
    more than --prefetch messages, and the rest stay queued rather than pile up in memory."""
    queue.publish_many(numbered(0, 5000))
    process = cli.popen("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                        "--ca-file", str(cli.certs.ca_file), "--jsonl", "--prefetch", "300")
    try:
        assert process.stdout is not None
        wait_for_full_pipe(process.stdout.fileno())  # the sign: it blocks writing
        ready, unacked = queue_counts(rabbit, queue)
        assert unacked <= 300
        assert ready >= 5000 - 300 - 400  # at most the window, plus what the 64 KiB pipe took
    finally:
        process.kill()
        process.wait()


def queue_info(rabbit: RabbitBroker, queue: BrokerQueue, *columns: str) -> list[int]:
    """Columns of `rabbitmqctl list_queues` for the queue (what the broker itself counts)."""
    for line in rabbit.ctl("list_queues", "-q", "name", *columns).splitlines():
        parts = line.split()
        if parts and parts[0] == queue.name:
            return [int(part) for part in parts[1:]]
    raise AssertionError(f"{queue.name} is not listed")


def queue_counts(rabbit: RabbitBroker, queue: BrokerQueue) -> tuple[int, int]:
    ready, unacked = queue_info(rabbit, queue, "messages_ready", "messages_unacknowledged")
    return ready, unacked


def queue_consumers(rabbit: RabbitBroker, queue: BrokerQueue) -> int:
    return queue_info(rabbit, queue, "consumers")[0]


@contextmanager
def tail_through_proxy(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, save: Path, first: int, total: int,
    *extra: str,
) -> Iterator[tuple[TcpProxy, subprocess.Popen[str]]]:
    """easee-tail reaching the broker through a proxy, once it has saved the `first` of
    `total` numbered messages; the test breaks the path, then publishes the rest."""
    proxy = TcpProxy(rabbit.amqps_port)
    try:
        queue.publish_many(numbered(0, first))
        url = f"amqps://{USER}:{PASSWORD}@localhost:{proxy.port}/"
        process = cli.popen("--amqp-url", url, "--queue", queue.name, "--ca-file",
                            str(cli.certs.ca_file), "--jsonl", "--save", str(save),
                            "--count", str(total), *extra, stdout=subprocess.DEVNULL)
        wait_for(lambda: len(saved_records(save)) >= first, f"the first {first} lines")
        yield proxy, process
    finally:
        proxy.close()


def test_a_network_cut_reconnects_and_loses_nothing(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    save = tmp_path / "save.jsonl"
    with tail_through_proxy(cli, rabbit, queue, save, 40, 80) as (proxy, process):
        proxy.cut()
        queue.publish_many(numbered(40, 80))
        code, stderr = finish(process)
    assert code == 0, stderr
    assert "was lost" in stderr and "reconnected" in stderr
    assert set(values(saved_records(save))) == set(range(80))
    assert PASSWORD not in stderr


def test_missed_heartbeats_on_a_silent_network_count_as_a_loss(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, tmp_path: Path
) -> None:
    """The path goes silent (no reset, nothing arrives): only the heartbeat can tell."""
    save = tmp_path / "save.jsonl"
    with tail_through_proxy(cli, rabbit, queue, save, 10, 20, "--heartbeat", "1") as (
        proxy, process
    ):
        proxy.silence()
        assert process.stderr is not None
        line = process.stderr.readline()
        while "reconnecting" not in line and line:
            line = process.stderr.readline()
        assert "reconnecting (attempt 1" in line
        proxy.silence(False)
        queue.publish_many(numbered(10, 20))
        code, stderr = finish(process)
    assert code == 0, stderr
    assert "reconnected" in stderr
    assert set(values(saved_records(save))) == set(range(20))
