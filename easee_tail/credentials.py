"""Connection details for the stream: from the Easee API (token or login), or an AMQP URL.

The API is called only when needed (Easee rate-limits and may ban chatty clients).
"""

from __future__ import annotations

import email.utils
import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from easee_tail import __version__
from easee_tail.details import ConnectionDetails, mask_url
from easee_tail.errors import (
    ApiReplyError,
    ApiUnavailable,
    CredentialsRejected,
    EaseeTailError,
    IncompleteDetails,
    NotIntegrationAccount,
    TlsFailure,
    Unreachable,
)
from easee_tail.tls import client_context, describe_tls_error

STREAM_PATH = "/api/streams/amqp/v2"
LOGIN_PATH = "/api/accounts/login"
REFRESH_PATH = "/api/accounts/refresh_token"
PROFILE_PATH = "/api/accounts/profile"
EARLY = 300.0  # seconds before its expiry at which a token is renewed rather than used
TIMEOUT = (5.0, 20.0)  # connect, and each read (seconds)
DEADLINE = 20.0  # seconds for a whole API call: connect, request and the whole reply
MAX_REPLY = 1 << 20  # bytes: a details reply is under 1 KiB; more is not an API answering
MAX_REDIRECTS = 3
SHORT_WAIT = 60.0  # a 429 asking for at most this long is waited out (twice at most)


class _ContextAdapter(HTTPAdapter):
    """Makes requests verify with our SSL context (system store + --ca-file) instead of certifi."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


@dataclass(frozen=True)
class ApiReply:
    """An API answer read whole (within DEADLINE and MAX_REPLY)."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)


class EaseeApi:
    """The Easee API, treated as untrusted: every call has a total deadline and a size cap,
    a redirect is followed only to the same scheme, host and port (credentials never go
    elsewhere), and a short 429 is waited out as the API asks."""

    def __init__(
        self, base_url: str, ca_file: str | None = None, insecure: bool = False,
        wait: Callable[[float, str], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._wait = wait or (lambda seconds, _why: time.sleep(seconds))
        self._shown_url = mask_url(self.base_url)
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"easee-tail/{__version__}"
        self._session.headers["Accept"] = "application/json"
        self._session.trust_env = False  # no proxies or .netrc credentials slipped in
        self._session.mount("https://", _ContextAdapter(client_context(ca_file, insecure)))
        if insecure:  # the user asked, and was warned by the command line; no second warning
            self._session.verify = False
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def ping(self) -> int:
        """The HTTP status of the API's root: any answer means it is reachable."""
        return self._call("GET", "/", follow=False).status_code

    def login(self, username: str, password: str) -> Tokens:
        """An access token (and a refresh token, when given) for a username and password."""
        reply = self._call("POST", LOGIN_PATH, json={"userName": username, "password": password})
        if reply.status_code in (400, 401, 403):
            raise CredentialsRejected(
                f"the Easee API refused the login for {username!r} ({reply.status_code}"
                f"{_title(reply)}); check --username/--password or EASEE_USERNAME/EASEE_PASSWORD"
            )
        return self._tokens(reply, LOGIN_PATH)

    def refresh(self, tokens: Tokens) -> Tokens:
        """New tokens for old ones; a refresh token works once. Raises when refused."""
        reply = self._call("POST", REFRESH_PATH, json={
            "accessToken": tokens.access, "refreshToken": tokens.refresh})
        if reply.status_code in (400, 401, 403):
            raise CredentialsRejected(f"the Easee API refused to refresh the token "
                                      f"({reply.status_code}{_title(reply)})")
        return self._tokens(reply, REFRESH_PATH)

    def _tokens(self, reply: ApiReply, path: str) -> Tokens:
        body = self._json(reply, path)
        access, refresh = body.get("accessToken"), body.get("refreshToken")
        if not isinstance(access, str) or not access:
            raise ApiReplyError(f"the reply to {path} from {self._shown_url} has no accessToken")
        lifetime = body.get("expiresIn")
        expires_at = time.time() + lifetime if isinstance(lifetime, int | float) \
            and not isinstance(lifetime, bool) and lifetime > 0 else None
        return Tokens(access, refresh if isinstance(refresh, str) and refresh else None,
                      expires_at)

    def stream_details(self, token: str) -> ConnectionDetails:
        """GET /api/streams/amqp/v2 with the token of an integration account."""
        auth = {"Authorization": f"Bearer {token}"}
        reply = self._call("GET", STREAM_PATH, headers=auth)
        if reply.status_code == 403:
            raise _not_integration(reply)
        if reply.status_code in (400, 401):
            # Easee does not document how a non-partner token fails; a token that still
            # reads the caller's own profile is valid, so the account is the problem.
            profile = self._call("GET", PROFILE_PATH, headers=auth)
            if profile.status_code == 200:
                raise _not_integration(reply)
            if reply.status_code == 401 or profile.status_code == 401:
                raise CredentialsRejected(
                    f"the Easee API rejected the token ({reply.status_code}{_title(reply)}); "
                    "tokens expire: get a new one, or check --token / EASEE_TOKEN"
                )
        body = self._json(reply, STREAM_PATH)
        return _details_from_reply(body, self._shown_url)

    def _call(self, method: str, path: str, follow: bool = True, **kwargs: Any) -> ApiReply:
        url = self.base_url + path
        redirects = waits = 0
        while True:
            reply = self._within_deadline(method, url, kwargs)
            location = reply.headers.get("Location")
            if follow and reply.status_code in _REDIRECTS and location:
                target = urljoin(url, location)
                redirects += 1
                if not _same_origin(url, target):
                    raise ApiReplyError(
                        f"{path} on {self._shown_url} redirected to {mask_url(target)} (another "
                        "host, port or plain http): not followed, as the request carries "
                        "credentials")
                if redirects > MAX_REDIRECTS:
                    raise ApiReplyError(f"{path} on {self._shown_url} redirected more than "
                                        f"{MAX_REDIRECTS} times")
                url = target
                continue
            if reply.status_code == 429 and waits < 2:
                wait = retry_after(reply.headers.get("Retry-After"))
                if wait is not None and wait <= SHORT_WAIT:
                    waits += 1
                    self._wait(wait, f"the Easee API asks this client to wait {wait:.0f} s (429)")
                    continue
            return reply

    def _within_deadline(self, method: str, url: str, kwargs: dict[str, Any]) -> ApiReply:
        """The call in a thread of its own, so that a reply that trickles in (each read
        within the read timeout) cannot hold easee-tail past DEADLINE."""
        outcome: list[ApiReply | BaseException] = []
        done = threading.Event()
        deadline = time.monotonic() + DEADLINE

        def call() -> None:
            try:
                outcome.append(self._read(method, url, kwargs, deadline))
            except BaseException as problem:  # handed to the waiting thread, raised there
                outcome.append(problem)
            finally:
                done.set()

        threading.Thread(target=call, name="easee-api", daemon=True).start()
        if not done.wait(DEADLINE):
            raise Unreachable(f"the Easee API at {self._shown_url} did not answer within "
                              f"{DEADLINE:.0f} s")
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _read(self, method: str, url: str, kwargs: dict[str, Any], deadline: float
              ) -> ApiReply:
        try:
            with self._session.request(method, url, timeout=TIMEOUT, stream=True,
                                       allow_redirects=False, **kwargs) as reply:
                body = bytearray()
                for chunk in reply.iter_content(65536):
                    body += chunk
                    if len(body) > MAX_REPLY:
                        raise ApiReplyError(
                            f"the Easee API at {self._shown_url} answered more than "
                            f"{MAX_REPLY >> 20} MB: not a reply of the API; stopped reading")
                    if time.monotonic() > deadline:  # given up on already: stop reading
                        raise Unreachable("the Easee API reply was too slow")
                return ApiReply(reply.status_code, reply.headers, bytes(body))
        except requests.exceptions.SSLError as problem:
            host = urlsplit(self.base_url).hostname
            raise TlsFailure(
                f"TLS verification failed for the Easee API at {host} "
                f"({describe_tls_error(problem)}); if it uses a private CA, pass --ca-file"
            ) from None
        except requests.exceptions.Timeout:
            raise Unreachable(
                f"the Easee API at {self._shown_url} did not answer within {TIMEOUT[1]:.0f} s"
            ) from None
        except requests.exceptions.ConnectionError as problem:
            raise Unreachable(
                f"cannot reach the Easee API at {self._shown_url}: {_connection_reason(problem)}"
            ) from None
        except requests.exceptions.RequestException as problem:
            raise ApiReplyError(
                f"the request to {self._shown_url} failed: {type(problem).__name__}"
            ) from None

    def _json(self, reply: ApiReply, path: str) -> dict[str, Any]:
        if reply.status_code == 429:
            wait = retry_after(reply.headers.get("Retry-After"))
            raise ApiUnavailable(
                "the Easee API is rate-limiting this client (429)"
                + (f"; retry after {wait:.0f} s" if wait is not None
                   else "; wait a few minutes before retrying"), wait)
        if 500 <= reply.status_code < 600:
            raise ApiUnavailable(
                f"{path} on {self._shown_url} answered {reply.status_code}{_title(reply)}",
                retry_after(reply.headers.get("Retry-After")))
        if reply.status_code != 200:
            raise ApiReplyError(
                f"{path} on {self._shown_url} answered {reply.status_code}{_title(reply)}"
            )
        try:
            body = reply.json()
        except ValueError:
            raise ApiReplyError(
                f"{path} on {self._shown_url} answered 200 but not with JSON "
                f"(content type {reply.headers.get('Content-Type', 'none')!r})"
            ) from None
        if not isinstance(body, dict):
            raise ApiReplyError(f"{path} on {self._shown_url} answered JSON that is not an object")
        return body


@dataclass(frozen=True)
class Tokens:
    access: str
    refresh: str | None = None
    expires_at: float | None = None  # epoch seconds, when the API said (expiresIn)

    def __repr__(self) -> str:  # never in a traceback or a log
        return "Tokens(****)"

    def fresh(self, now: float | None = None) -> bool:
        """Worth using as it is: not within EARLY seconds of expiry (unknown expiry: yes)."""
        return self.expires_at is None or (now or time.time()) < self.expires_at - EARLY


class TokenStore(Protocol):
    """Where tokens from logins are kept between runs (token_cache.TokenCache)."""

    def load(self, api_url: str, username: str) -> Tokens | None: ...

    def store(self, api_url: str, username: str, tokens: Tokens) -> None: ...


@dataclass(frozen=True)
class Login:
    username: str
    password: Callable[[], str]  # asked for only when a login is needed: a cached token may do


class StreamCredentials:
    """Connection details from the API, with the token renewed when the API rejects it.

    A login's tokens are kept in `cache` (when given) and reused by later runs until shortly
    before they expire, then refreshed with the refresh token, or the login repeated. A token
    given with --token cannot be renewed here, so its rejection is the user's to fix.
    """

    def __init__(
        self, api: EaseeApi, token: str | None = None, login: Login | None = None,
        on_secret: Callable[[str], None] = lambda _: None, cache: TokenStore | None = None,
    ) -> None:
        self.api = api
        self._tokens = Tokens(token) if token else None
        self._login = login
        self._on_secret = on_secret  # told every token, so that output can mask it
        self._cache = cache if login is not None else None

    def details(self) -> ConnectionDetails:
        """The stream's connection details; their password is told to `on_secret` first."""
        details = self._details()
        self._on_secret(details.password)
        return details

    def _details(self) -> ConnectionDetails:
        tokens = self._tokens or self._cached() or self._log_in()
        try:
            return self.api.stream_details(tokens.access)
        except CredentialsRejected:
            if self._login is None:
                raise CredentialsRejected(
                    "the Easee API rejected the token given with --token or EASEE_TOKEN "
                    "(tokens expire): get a new one, or use --username to let easee-tail "
                    "log in and renew it"
                ) from None
        return self.api.stream_details(self._renew(tokens).access)

    def _cached(self) -> Tokens | None:
        if self._cache is None or self._login is None:
            return None
        cached = self._cache.load(self.api.base_url, self._login.username)
        if cached is None:
            return None
        self._tell(cached)
        if cached.fresh():
            self._tokens = cached
            return cached
        return self._renew(cached)

    def _log_in(self) -> Tokens:
        assert self._login is not None
        return self._keep(self.api.login(self._login.username, self._login.password()))

    def _renew(self, tokens: Tokens) -> Tokens:
        if tokens.refresh:
            try:
                return self._keep(self.api.refresh(tokens))
            except CredentialsRejected:
                pass  # a refresh token works once; log in again
        return self._log_in()

    def _keep(self, tokens: Tokens) -> Tokens:
        self._tell(tokens)
        self._tokens = tokens
        if self._cache is not None and self._login is not None:
            self._cache.store(self.api.base_url, self._login.username, tokens)
        return tokens

    def _tell(self, tokens: Tokens) -> None:
        for secret in (tokens.access, tokens.refresh):
            if secret:
                self._on_secret(secret)


def _details_from_reply(body: dict[str, Any], shown_url: str) -> ConnectionDetails:
    expected = {
        "server": str, "port": int, "useSsl": bool, "virtualHost": str,
        "queueName": str, "username": str, "password": str,
    }
    # bool is an int in Python: "port": true must not pass as a port.
    missing = [key for key, kind in expected.items()
               if not isinstance(body.get(key), kind)
               or (kind is not bool and isinstance(body.get(key), bool))]
    if missing:
        raise IncompleteDetails(
            f"the connection details from {shown_url} lack or mistype: {', '.join(missing)}"
        )
    exchange = body.get("exchangeName")
    return ConnectionDetails(
        server=body["server"],
        port=body["port"],
        use_ssl=body["useSsl"],
        virtual_host=body["virtualHost"] or "/",
        queue=body["queueName"],
        exchange=exchange if isinstance(exchange, str) else None,
        username=body["username"],
        password=body["password"],
    )


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _same_origin(url: str, target: str) -> bool:
    here, there = urlsplit(url), urlsplit(target)
    return (here.scheme, here.hostname, here.port) == (there.scheme, there.hostname, there.port)


def retry_after(header: str | None) -> float | None:
    """Retry-After in seconds (it may be a number of seconds or an HTTP date), or None."""
    if not header:
        return None
    header = header.strip()
    if header.isdecimal():
        return float(header)
    try:
        moment = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - time.time())


def _not_integration(reply: ApiReply) -> EaseeTailError:
    return NotIntegrationAccount(
        f"the token is valid but not of an integration (partner) account ({reply.status_code}"
        f"{_title(reply)}); the AMQP stream needs your integration account's login: "
        "ask Easee for partner access if you have none"
    )


def _title(reply: ApiReply) -> str:
    try:
        body = reply.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("title", "errorCodeName", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return f": {body[key][:120]}"
    return ""


def _connection_reason(problem: BaseException) -> str:
    text = str(problem)
    if any(s in text for s in ("Name or service not known", "NameResolution", "nodename nor",
                               "Temporary failure in name resolution", "No address associated")):
        return "the host name does not resolve (DNS)"
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text:
        return "the connection timed out"
    if "Network is unreachable" in text:
        return "network is unreachable"
    return "the connection failed"
