"""Every failure a user can meet: one clear stderr line, the documented exit code, no secret."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from tests.conftest import (
    LOGIN_PASSWORD,
    TOKEN,
    BrokerQueue,
    Runner,
    api_args,
    assert_no_secrets,
    clean_env,
    free_closed_port,
    stream_details,
)
from tests.harness.certs import Certificates
from tests.harness.rabbit import PASSWORD, RabbitBroker


def one_line_error(result_stderr: str) -> str:
    errors = [line for line in result_stderr.splitlines() if line.startswith("easee-tail: error")]
    assert len(errors) == 1, result_stderr
    assert "Traceback" not in result_stderr
    return errors[0]


def test_rejected_token_exits_3(cli: Runner, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        {"title": "Unauthorized"}, status=401)
    httpserver.expect_request("/api/accounts/profile").respond_with_json({}, status=401)
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs))
    assert result.returncode == 3
    assert "rejected the token" in one_line_error(result.stderr)
    assert_no_secrets(result.stdout, result.stderr)


def test_a_normal_account_is_told_it_is_not_an_integration_account(
    cli: Runner, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        {"errorCode": 100, "title": "Forbidden"}, status=403)
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs))
    assert result.returncode == 4
    assert "not of an integration (partner) account" in one_line_error(result.stderr)
    assert_no_secrets(result.stdout, result.stderr)


def test_a_valid_token_refused_with_400_is_also_a_non_integration_account(
    cli: Runner, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        {"title": "Not an integration"}, status=400)
    httpserver.expect_request("/api/accounts/profile").respond_with_json({"userId": 1})
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs))
    assert result.returncode == 4


def test_wrong_login_exits_3_without_echoing_the_password(
    cli: Runner, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/accounts/login", method="POST").respond_with_json(
        {"errorCode": 100, "errorCodeName": "InvalidUserOrPassword"}, status=400)
    env = clean_env(EASEE_PASSWORD=LOGIN_PASSWORD)
    result = cli.run("--username", "me@example.com", *api_args(httpserver, cli.certs), env=env)
    assert result.returncode == 3
    assert "refused the login" in one_line_error(result.stderr)
    assert_no_secrets(result.stdout, result.stderr)


def test_username_without_password_and_no_terminal_is_a_usage_error(cli: Runner) -> None:
    result = cli.run("--username", "me@example.com")
    assert result.returncode == 2 and "EASEE_PASSWORD" in result.stderr


def test_no_credentials_at_all_points_to_the_demo(cli: Runner) -> None:
    result = cli.run()
    assert result.returncode == 2 and "easee-tail demo" in result.stderr


@pytest.mark.parametrize("body, reason", [
    ("<html>maintenance</html>", "not with JSON"),
    ('{"server": "x", "port": "5671"}', "lack or mistype"),
    ("[1, 2]", "not an object"),
])
def test_unexpected_api_replies_exit_7(
    cli: Runner, httpserver: HTTPServer, body: str, reason: str
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_data(body)
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs))
    assert result.returncode == 7
    assert reason in one_line_error(result.stderr)


def test_rate_limiting_is_explained(cli: Runner, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_data(
        "", status=429, headers={"Retry-After": "120"})
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs))
    assert result.returncode == 7 and "retry after 120 s" in result.stderr


def test_unreachable_api_exits_5(cli: Runner) -> None:
    result = cli.run("--token", TOKEN, "--api-url", f"http://127.0.0.1:{free_closed_port()}")
    assert result.returncode == 5 and "connection refused" in one_line_error(result.stderr)


def test_unresolvable_api_host_exits_5(cli: Runner) -> None:
    result = cli.run("--token", TOKEN, "--api-url", "https://api.easee.invalid")
    assert result.returncode == 5 and "does not resolve" in one_line_error(result.stderr)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers: a hung API."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_an_api_that_never_answers_times_out_with_exit_5(
    cli: Runner, silent_server: int
) -> None:
    result = cli.run("--token", TOKEN, "--api-url", f"http://127.0.0.1:{silent_server}",
                     timeout=60)
    assert result.returncode == 5 and "did not answer" in one_line_error(result.stderr)


def test_an_https_api_with_an_unknown_ca_fails_verification_with_exit_6(
    cli: Runner, https_api: HTTPServer
) -> None:
    result = cli.run("--token", TOKEN, "--api-url", https_api.url_for("").rstrip("/"))
    assert result.returncode == 6
    line = one_line_error(result.stderr)
    assert "localhost" in line and "--ca-file" in line


def test_an_https_api_is_trusted_with_ca_file(
    cli: Runner, https_api: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    https_api.expect_request("/api/streams/amqp/v2").respond_with_json(
        stream_details(rabbit, queue.name))
    result = cli.run("--token", TOKEN, "--api-url", https_api.url_for("").rstrip("/"),
                     "--ca-file", str(cli.certs.ca_file), "--duration", "0.3")
    https_api.clear()
    assert result.returncode == 0, result.stderr


def test_broker_certificate_from_an_unknown_ca_fails_with_exit_6(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, certs: Certificates
) -> None:
    result = cli.run("--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
                     "--ca-file", str(certs.other_ca_file))
    assert result.returncode == 6
    line = one_line_error(result.stderr)
    assert "broker localhost" in line and "--ca-file" in line
    assert_no_secrets(result.stdout, result.stderr)


def test_broker_certificate_for_another_host_name_fails_with_exit_6(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, certs: Certificates
) -> None:
    # The certificate names localhost only; 127.0.0.1 is the same server under another name.
    url = rabbit.amqps_url(host="127.0.0.1")
    result = cli.run("--amqp-url", url, "--queue", queue.name, "--ca-file", str(certs.ca_file))
    assert result.returncode == 6, result.stderr
    assert "IP address mismatch" in one_line_error(result.stderr)


def test_broker_refusing_the_login_exits_8_without_the_password(
    cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        stream_details(rabbit, queue.name, password=PASSWORD + "-rotated"))
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs))
    assert result.returncode == 8
    assert "refused the AMQP login" in one_line_error(result.stderr)
    assert_no_secrets(result.stdout, result.stderr)
    assert PASSWORD + "-rotated" not in result.stderr


def test_missing_queue_exits_9(
    cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        stream_details(rabbit, "Operator_gone.Q"))
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs))
    assert result.returncode == 9
    assert "'Operator_gone.Q' does not exist" in one_line_error(result.stderr)


def test_closed_broker_port_exits_5(cli: Runner, queue: BrokerQueue) -> None:
    url = f"amqps://easee-test:{PASSWORD}@localhost:{free_closed_port()}/"
    result = cli.run("--amqp-url", url, "--queue", queue.name)
    assert result.returncode == 5 and "connection refused" in one_line_error(result.stderr)
    assert_no_secrets(result.stdout, result.stderr)


def test_plain_amqp_from_the_api_is_used_with_a_warning(
    cli: Runner, httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    httpserver.expect_request("/api/streams/amqp/v2").respond_with_json(
        stream_details(rabbit, queue.name, useSsl=False, port=rabbit.amqp_port))
    queue.publish("EH9.O.109", '{"Value": 1}')
    result = cli.run("--token", TOKEN, *api_args(httpserver, cli.certs), "--count", "1")
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "unencrypted" in result.stderr


def test_unwritable_save_file_exits_11_before_consuming(
    cli: Runner, api: HTTPServer, queue: BrokerQueue, tmp_path: object
) -> None:
    queue.publish("EH9.O.109", '{"Value": 1}')
    result = cli.run("--token", TOKEN, *api_args(api, cli.certs),
                     "--save", "/nonexistent-dir/save.jsonl")
    assert result.returncode == 11 and "--save" in one_line_error(result.stderr)
    assert queue.depth() == 1


def test_bad_flags_are_usage_errors(cli: Runner) -> None:
    for args in (["--count", "0"], ["--duration", "-1"], ["--prefetch", "x"],
                 ["--amqp-url", "http://x", "--queue", "q"], ["--amqp-url", "amqps://h/"],
                 ["--ca-file", "/nonexistent.pem"], ["--token", "t", "--username", "u"]):
        result = cli.run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_insecure_skips_verification_and_says_so(cli: Runner, queue: BrokerQueue) -> None:
    """By IP address the certificate (for localhost) does not match: refused, unless
    --insecure, which must warn."""
    url = queue.broker.amqps_url(host="127.0.0.1")
    refused = cli.run("--amqp-url", url, "--queue", queue.name, "--jsonl", "--count", "1",
                      "--duration", "2")
    assert refused.returncode == 6
    queue.publish("EHINSEC1.O.109", '{"Timestamp": "2026-11-24T12:00:00Z", "Value": 3}')
    allowed = cli.run("--amqp-url", url, "--queue", queue.name, "--jsonl", "--count", "1",
                      "--insecure")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["charger"] == "EHINSEC1"
    assert "warning: --insecure: TLS certificates are NOT verified" in allowed.stderr


def test_password_on_the_command_line_warns(cli: Runner, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/accounts/login").respond_with_json({"title": "no"},
                                                                       status=401)
    result = cli.run("--username", "partner@example.com", "--password", LOGIN_PASSWORD,
                     *api_args(httpserver, cli.certs))
    assert result.returncode == 3
    assert "--password on the command line is visible to other users" in result.stderr
    assert LOGIN_PASSWORD not in result.stderr
    quiet = cli.run("--username", "partner@example.com", *api_args(httpserver, cli.certs),
                    env=clean_env(EASEE_PASSWORD=LOGIN_PASSWORD))
    assert quiet.returncode == 3
    assert "visible to other users" not in quiet.stderr
