"""Profiles (config.toml) and the token cache, end to end: the installed CLI, the real broker,
a real HTTP server playing the Easee API, the user dirs of each test (XDG_*)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import (
    LOGIN_PASSWORD,
    TOKEN,
    BrokerQueue,
    Runner,
    assert_no_secrets,
    clean_env,
    free_closed_port,
    stream_details,
)
from tests.harness.rabbit import RabbitBroker
from tests.harness.terminal import Terminal

USERNAME = "partner@example.com"
LOGIN, REFRESH, STREAM = "/api/accounts/login", "/api/accounts/refresh_token", "/api/streams/amqp/v2"


def write_config(text: str) -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "easee-tail" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cache_file() -> Path:
    return Path(os.environ["XDG_CACHE_HOME"]) / "easee-tail" / "tokens.json"


def calls(server: HTTPServer, path: str) -> int:
    return sum(1 for request, _response in server.log if request.path == path)


class FakeAccounts:
    """The API's login, refresh and stream endpoints; every token it issues is numbered."""

    def __init__(self, server: HTTPServer, rabbit: RabbitBroker, queue: str,
                 expires_in: int = 3600) -> None:
        self.issued = 0
        self.valid: set[str] = set()
        self.expires_in = expires_in
        server.expect_request(LOGIN, method="POST").respond_with_handler(self._login)
        server.expect_request(REFRESH, method="POST").respond_with_handler(self._refresh)
        server.expect_request(STREAM).respond_with_handler(self._stream)
        server.expect_request("/api/accounts/profile").respond_with_json({}, status=401)
        self._details = stream_details(rabbit, queue)

    def _issue(self) -> Response:
        self.issued += 1
        access = f"access-{self.issued}-Zz9"
        self.valid = {access}  # a new token replaces the old ones
        body = {"accessToken": access, "refreshToken": f"refresh-{self.issued}-Yy8",
                "expiresIn": self.expires_in}
        return Response(json.dumps(body), content_type="application/json")

    def _login(self, request: Request) -> Response:
        if request.json != {"userName": USERNAME, "password": LOGIN_PASSWORD}:
            return Response('{"title": "bad login"}', status=401)
        return self._issue()

    def _refresh(self, request: Request) -> Response:
        body = request.json or {}
        if body.get("refreshToken") != f"refresh-{self.issued}-Yy8":
            return Response('{"title": "refresh token used"}', status=400)
        return self._issue()

    def _stream(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.valid:
            return Response('{"title": "Unauthorized"}', status=401)
        return Response(json.dumps(self._details), content_type="application/json")


def api_url(server: HTTPServer) -> str:
    return server.url_for("").rstrip("/")


@pytest.fixture
def accounts(httpserver: HTTPServer, rabbit: RabbitBroker, queue: BrokerQueue) -> FakeAccounts:
    queue.publish_many([(f"EHPROFIL.O.{n}", f'{{"Value": {n}}}', None) for n in (109, 120, 96)])
    return FakeAccounts(httpserver, rabbit, queue.name)


def test_a_profile_gives_api_url_login_and_filters(
    cli: Runner, httpserver: HTTPServer, accounts: FakeAccounts
) -> None:
    write_config(f'''
default = "work"
[profile.work]
api-url = "{api_url(httpserver)}"
username = "{USERNAME}"
ca-file = "{cli.certs.ca_file}"
obs = ["ChargerOpMode", "TotalPower"]
''')
    result = cli.run("--count", "2", env=clean_env(EASEE_PASSWORD=LOGIN_PASSWORD))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["name"] for line in result.stdout.splitlines()] == [
        "ChargerOpMode", "TotalPower"]
    assert_no_secrets(result.stdout, result.stderr)


def test_flags_beat_environment_beats_profile(
    cli: Runner, httpserver: HTTPServer, accounts: FakeAccounts
) -> None:
    write_config(f'''
[profile.work]
api-url = "http://127.0.0.1:{free_closed_port()}"
username = "{USERNAME}"
ca-file = "{cli.certs.ca_file}"
obs = "TotalPower"
''')
    env = clean_env(EASEE_PASSWORD=LOGIN_PASSWORD, EASEE_API_URL=api_url(httpserver))
    # the environment's API URL beats the profile's (closed) one; the flag --obs beats the
    # profile's filter
    result = cli.run("--profile", "work", "--obs", "ReasonForNoCurrent", "--count", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "ReasonForNoCurrent"
    # and the command line beats the environment
    result = cli.run("--profile", "work", "--api-url", f"http://127.0.0.1:{free_closed_port()}",
                     "--count", "1", env=env)
    assert result.returncode == 5 and "connection refused" in result.stderr


def test_a_token_beats_a_profiles_login(
    cli: Runner, api: HTTPServer, queue: BrokerQueue
) -> None:
    queue.publish("EHPROFIL.O.109", '{"Value": 3}')
    write_config(f'''
default = "work"
[profile.work]
username = "{USERNAME}"
api-url = "{api_url(api)}"
ca-file = "{cli.certs.ca_file}"
''')
    result = cli.run("--token", TOKEN, "--count", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["label"] == "Charging"


@pytest.mark.parametrize(("config", "message"), [
    ('[profile.a]\nview = "state"\n', "no profile 'missing'"),
    ('[profile.missing]\ncolour = "red"\n', "unknown key(s) colour"),
    ('[profile.missing]\ntoken = "abc"\n', "unknown key(s) token"),
    ('[profile.missing\n', "cannot read"),
    ('default = "b"\n[profile.missing]\n', "names no [profile.b]"),
])
def test_bad_profiles_are_one_line_usage_errors(cli: Runner, config: str, message: str) -> None:
    write_config(config)
    result = cli.run("demo", "--profile", "missing", "--count", "1")
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_profiles_command_lists_the_file(cli: Runner) -> None:
    path = write_config('default = "a"\n[profile.a]\nview = "state"\n[profile.b]\n'
                        'charger = ["EH1", "EH2"]\n')
    shown = cli.run("profiles")
    assert shown.returncode == 0
    assert str(path) in shown.stdout and "[profile.a]  (default)" in shown.stdout
    completed = subprocess.run(
        [cli.executable], capture_output=True, text=True, env={
            **clean_env(), "_EASEE_TAIL_COMPLETE": "bash_complete",
            "COMP_WORDS": "easee-tail --profile ", "COMP_CWORD": "2"}).stdout
    assert [line.split(",", 1)[1] for line in completed.splitlines()] == ["a", "b"]
    document = json.loads(cli.run("profiles", "--json").stdout)
    assert document == {"path": str(path), "default": "a",
                        "profiles": {"a": {"view": "state"}, "b": {"charger": ["EH1", "EH2"]}}}


def login_args(cli: Runner, server: HTTPServer) -> list[str]:
    return ["--username", USERNAME, "--api-url", api_url(server), "--count", "1",
            "--ca-file", str(cli.certs.ca_file)]


def test_a_login_is_cached_0600_and_reused_without_a_password(
    cli: Runner, httpserver: HTTPServer, accounts: FakeAccounts
) -> None:
    first = cli.run(*login_args(cli, httpserver), env=clean_env(EASEE_PASSWORD=LOGIN_PASSWORD))
    assert first.returncode == 0, first.stderr
    path = cache_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # no password at all now, and stdin is not a terminal: the cached token does it
    again = cli.run(*login_args(cli, httpserver))
    assert again.returncode == 0, again.stderr
    assert calls(httpserver, LOGIN) == 1 and accounts.issued == 1
    assert_no_secrets(first.stdout + first.stderr, again.stdout + again.stderr)
    assert "access-1-Zz9" not in again.stdout + again.stderr

    out = cli.run("logout")
    assert out.returncode == 0 and "removed 1 cached token " in out.stderr
    assert not path.exists()
    after = cli.run(*login_args(cli, httpserver))
    assert after.returncode == 2
    assert "needs a password (no usable cached token)" in after.stderr


def test_a_token_near_its_expiry_is_refreshed_not_logged_in_again(
    cli: Runner, httpserver: HTTPServer, accounts: FakeAccounts
) -> None:
    accounts.expires_in = 60  # inside the renewal margin: the next run refreshes it
    assert cli.run(*login_args(cli, httpserver),
                   env=clean_env(EASEE_PASSWORD=LOGIN_PASSWORD)).returncode == 0
    again = cli.run(*login_args(cli, httpserver))
    assert again.returncode == 0, again.stderr
    assert calls(httpserver, LOGIN) == 1 and calls(httpserver, REFRESH) == 1
    assert json.loads(cache_file().read_text()).popitem()[1]["access"] == "access-2-Zz9"


def test_a_rejected_cached_token_leads_to_a_new_login(
    cli: Runner, httpserver: HTTPServer, accounts: FakeAccounts
) -> None:
    env = clean_env(EASEE_PASSWORD=LOGIN_PASSWORD)
    assert cli.run(*login_args(cli, httpserver), env=env).returncode == 0
    accounts.valid = set()  # revoked on the server side; its refresh token is still good
    again = cli.run(*login_args(cli, httpserver), env=env)
    assert again.returncode == 0, again.stderr
    assert accounts.issued == 2  # renewed once (refresh), and the cache holds the new one
    assert json.loads(cache_file().read_text()).popitem()[1]["access"] == "access-2-Zz9"


def test_a_cache_file_others_can_read_is_not_used(
    cli: Runner, httpserver: HTTPServer, accounts: FakeAccounts
) -> None:
    env = clean_env(EASEE_PASSWORD=LOGIN_PASSWORD)
    assert cli.run(*login_args(cli, httpserver), env=env).returncode == 0
    cache_file().chmod(0o644)
    again = cli.run(*login_args(cli, httpserver), env=env)
    assert again.returncode == 0
    assert "open to other users" in again.stderr
    assert calls(httpserver, LOGIN) == 2


def test_a_profiles_view_opens_the_state_view_and_the_flag_overrides_it(cli: Runner) -> None:
    write_config('default = "watch"\n[profile.watch]\nview = "state"\nsilent-after = 90\n')
    screen = Terminal.open(100, 30)
    try:
        screen.run([cli.executable, "demo", "--rate", "40", "--chargers", "2", "--seed", "3"])
        screen.wait_for(lambda s: "state view · v: next" in s and "  status" in s)
        screen.press("C-c")
        screen.wait_for(lambda s: "EXIT=130" in s)
        screen.run([cli.executable, "demo", "--rate", "40", "--view", "stream"])
        screen.wait_for(lambda s: "stream view · v: next" in s and "ChargerOpMode" in s)
        screen.press("C-c")
        screen.wait_for(lambda s: "EXIT=130" in s)
    finally:
        screen.close()


def test_a_profile_sets_any_long_option_and_a_bad_one_breaks_only_itself(cli: Runner) -> None:
    write_config('default = "ops"\n[profile.ops]\nrate = 500.0\ncount = 3\nformat = "values"\n'
                 'idle-timeout = "1m"\n[profile.broken]\ncolour = "red"\n')
    result = cli.run("demo")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    assert all(len(line.split()) == 4 for line in result.stdout.splitlines())  # the preset
    broken = cli.run("demo", "--profile", "broken", "--count", "1")
    assert broken.returncode == 2 and "unknown key(s) colour" in broken.stderr
    shown = cli.run("profiles")
    assert shown.returncode == 0
    assert 'colour = "red"   <- unknown key' in shown.stdout


def test_profiles_shows_a_broken_config_instead_of_failing(cli: Runner) -> None:
    path = write_config("[profile.a\n")
    shown = cli.run("profiles")
    assert shown.returncode == 0
    assert shown.stdout.startswith(str(path)) and "cannot be used: cannot read" in shown.stdout
