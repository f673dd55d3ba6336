"""The credential rules: which options go together, where the connection details come
from (the API with a token or a login, or --amqp-url), when the API is asked (once, and
again only to refresh a rotated broker password), and when a password is asked for.

Beside credentials.py, which talks to the API; this decides what it is given. Every secret
given or fetched is masked in all output from the moment it is known.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from easee_tail.details import ConnectionDetails, mask_url, parse_amqp_url
from easee_tail.errors import MissingPassword, url_password
from easee_tail.reporter import Reporter

if TYPE_CHECKING:  # the HTTP client only when the API is asked (not for --amqp-url)
    from easee_tail.credentials import EaseeApi, StreamCredentials


class Access:
    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self._prompted: str | None = None  # a password asked for, for a re-login mid-run

    def check_password_source(self, ctx: click.Context, options: dict[str, Any]) -> None:
        if options["token"] and ctx.get_parameter_source("username") is \
                click.core.ParameterSource.DEFAULT_MAP:
            options["username"] = None  # a token (flag or environment) beats a profile's login
        source = ctx.get_parameter_source("password")
        if source is click.core.ParameterSource.ENVIRONMENT and not options["username"]:
            options["password"] = None  # EASEE_PASSWORD is for logins; a --token run ignores it
        if source is click.core.ParameterSource.COMMANDLINE:
            self.reporter.warn("--password on the command line is visible to other users of this "
                      "machine (ps, shell history); prefer EASEE_PASSWORD or the prompt")

    def details_getter(
        self, token: str | None, username: str | None, password: str | None, api_url: str,
        amqp_url: str | None, queue: str | None, ca_file: str | None, insecure: bool,
    ) -> Callable[[bool], ConnectionDetails]:
        """Check the credential options now; the returned call does the network part.

        It asks the API once, and again only when called with refresh=True (the broker
        refused the login: Easee may have rotated the password). Easee bans chatty clients.
        """
        credentials = self.credentials(token, username, password, api_url, amqp_url, queue,
                                       ca_file, insecure)
        if isinstance(credentials, ConnectionDetails):
            return lambda _refresh: credentials
        known: list[ConnectionDetails] = []

        def fetch(refresh: bool) -> ConnectionDetails:
            if refresh or not known:
                known[:] = [credentials.details()]
            return known[0]

        return fetch

    def credentials(
        self, token: str | None, username: str | None, password: str | None, api_url: str,
        amqp_url: str | None, queue: str | None, ca_file: str | None, insecure: bool,
    ) -> StreamCredentials | ConnectionDetails:
        """The credential options checked: the API and how to log in, or --amqp-url's details.

        Every secret given or fetched is masked in all output from here on.
        """
        self.reporter.redact.add(token, password, url_password(amqp_url) if amqp_url else None)
        if insecure:
            self.reporter.warn("--insecure: TLS certificates are NOT verified, for the API nor the broker; "
                      "anyone on the network path can read the stream and its password")
        if amqp_url:
            if not queue:
                raise click.UsageError("--amqp-url needs --queue (or EASEE_QUEUE)")
            try:
                return parse_amqp_url(amqp_url, queue)  # its password is masked above
            except ValueError as problem:
                raise click.BadParameter(str(problem), param_hint="--amqp-url") from None
        if token and username:
            raise click.UsageError("give --token or --username, not both")
        if not token and not username:
            raise click.UsageError(
                "no credentials: pass --token (or EASEE_TOKEN), --username (or EASEE_USERNAME), "
                "or --amqp-url with --queue; `easee-tail demo` runs without an account")
        if password and not username:
            raise click.UsageError("--password goes with --username")
        from easee_tail.credentials import Login, StreamCredentials
        from easee_tail.token_cache import TokenCache
        api = self.api(api_url, ca_file, insecure)
        login = None
        if username:
            login = Login(username, partial(self._password, username, password))
        return StreamCredentials(api, token=token, login=login,
                                 on_secret=self.reporter.redact.add,
                                 cache=TokenCache(warn=self.reporter.warn))

    def api(self, api_url: str, ca_file: str | None, insecure: bool) -> EaseeApi:
        """The Easee API at --api-url, which must be http(s); plain http off this machine is
        warned about (the token and password would travel unencrypted)."""
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise click.BadParameter(f"{api_url!r} is not an http(s):// URL with a host",
                                     param_hint="--api-url")
        if parts.scheme == "http" and not loopback(parts.hostname):
            self.reporter.warn(f"--api-url {mask_url(api_url)} is plain http: the token and the login "
                      "password travel unencrypted, readable on the network")
        from easee_tail.credentials import EaseeApi
        return EaseeApi(api_url, ca_file=ca_file, insecure=insecure, wait=self._wait_for_api)

    def _wait_for_api(self, seconds: float, why: str) -> None:
        """Wait as the API asked (a short 429), with a countdown on a terminal."""
        end = time.monotonic() + seconds
        if not self.reporter.env.stderr_isatty or self.reporter.table is not None:
            self.reporter.notice(f"{why}; waiting")
            time.sleep(seconds)
            return
        while (left := end - time.monotonic()) > 0:
            self.reporter.env.stderr.write(f"\reasee-tail: {why}; waiting: {left:.0f} s \x1b[K")
            self.reporter.env.stderr.flush()
            time.sleep(min(1.0, left))
        self.reporter.env.stderr.write("\r\x1b[K")
        self.reporter.env.stderr.flush()

    def _password(self, username: str, given: str | None) -> str:
        """The login password: given, or asked for on the terminal before the table is up.

        Asked only when a login is due: a token cached by an earlier run needs none.
        """
        if given:
            return given
        if self._prompted is not None:  # asked once this run: kept in memory, never on disk
            return self._prompted
        if not self.reporter.env.stdin_isatty or self.reporter.table is not None:
            raise MissingPassword(
                f"logging in as {username!r} needs a password (no usable cached token): pass "
                "EASEE_PASSWORD, or run on a terminal to be asked for it")
        password: str = click.prompt(f"Easee password for {username}", hide_input=True,
                                     err=True)
        self.reporter.redact.add(password)
        self._prompted = password
        return password


def loopback(host: str) -> bool:
    """localhost and loopback addresses: plain http there never leaves the machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
