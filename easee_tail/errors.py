"""Every way easee-tail can fail, each with a user-facing message and an exit code.

Stages raise these where the problem is known; cli.py turns them into one stderr line.
"""

from __future__ import annotations

from enum import IntEnum
from urllib.parse import unquote, urlsplit


class ExitCode(IntEnum):
    OK = 0  # also --count/--duration reached, and a reader that closed the pipe (| head)
    ERROR = 1  # an unexpected internal error (a bug: please report it)
    USAGE = 2  # bad flags or arguments
    CREDENTIALS_REJECTED = 3  # token or login refused by the Easee API (401/400)
    NOT_INTEGRATION_ACCOUNT = 4  # the token is valid but not of an integration account (403)
    UNREACHABLE = 5  # DNS failure, refused connection or timeout (API or broker)
    TLS = 6  # certificate verification or TLS handshake failed
    API_REPLY = 7  # the Easee API answered something unexpected (bad JSON, 429, 5xx)
    BROKER_LOGIN = 8  # the broker refused the AMQP username/password or vhost
    QUEUE_NOT_FOUND = 9  # the queue does not exist (or we may not read it)
    QUEUE_SHARED = 10  # other consumers are attached; --allow-shared overrides
    OUTPUT = 11  # the --save file cannot be opened or written
    BROKER_CLOSED = 12  # the broker closed the connection or channel while consuming
    NOT_A_CAPTURE = 13  # replay, timeline, sessions: nothing in the input is a record, or
    # the input cannot be read
    ALERT = 14  # --exit-on-alert: latency or silence crossed its --alert-* bound
    HANGUP = 129  # SIGHUP (the terminal went away)
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


class EaseeTailError(Exception):
    exit_code = ExitCode.ERROR
    # A fault that may pass by itself (a restart, a network blip, a busy API): a running
    # tail retries it with backoff instead of ending. At start, every error ends the run.
    transient = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotACapture(EaseeTailError):
    """Lines were read and not one of them is a record easee-tail wrote."""

    exit_code = ExitCode.NOT_A_CAPTURE


class MissingPassword(EaseeTailError):
    """A login is due and no password is at hand (and none can be asked for)."""

    exit_code = ExitCode.USAGE


class CredentialsRejected(EaseeTailError):
    exit_code = ExitCode.CREDENTIALS_REJECTED


class NotIntegrationAccount(EaseeTailError):
    exit_code = ExitCode.NOT_INTEGRATION_ACCOUNT


class Unreachable(EaseeTailError):
    exit_code = ExitCode.UNREACHABLE
    transient = True


class TlsFailure(EaseeTailError):
    """A certificate that does not verify: never retried, whatever the moment."""

    exit_code = ExitCode.TLS


class TlsHandshakeFailed(TlsFailure):
    """A TLS handshake cut short (EOF, reset, an alert) with no verification failure: a
    broker or load balancer restarting looks like this."""

    transient = True


class ApiReplyError(EaseeTailError):
    exit_code = ExitCode.API_REPLY


class ApiUnavailable(ApiReplyError):
    """429 or 5xx: the API is busy or failing, not refusing us."""

    transient = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the API asked us to wait, if it said


class IncompleteDetails(ApiReplyError):
    """The API answered the stream endpoint, but without every field a connection needs."""


class BrokerLoginRefused(EaseeTailError):
    exit_code = ExitCode.BROKER_LOGIN


class QueueNotFound(EaseeTailError):
    exit_code = ExitCode.QUEUE_NOT_FOUND


class QueueShared(EaseeTailError):
    exit_code = ExitCode.QUEUE_SHARED


class PeekUnsafe(EaseeTailError):
    """--peek on a queue where looking destroys (a quorum queue's delivery limit)."""

    exit_code = ExitCode.USAGE


class QueueLocked(QueueShared):
    """An exclusive queue that another connection holds (RESOURCE_LOCKED)."""


class OutputFailure(EaseeTailError):
    exit_code = ExitCode.OUTPUT


class BrokerClosed(EaseeTailError):
    exit_code = ExitCode.BROKER_CLOSED
    transient = True


class AlertRaised(EaseeTailError):
    """--exit-on-alert: an --alert-latency or --alert-silence bound was crossed."""

    exit_code = ExitCode.ALERT


class Redactor:
    """Masks the secrets of this run (token, passwords) in any text that leaves the process."""

    MASK = "****"

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *secrets: str | None) -> None:
        # Very short strings would mask ordinary words; Easee secrets are long.
        self._secrets.update(s for s in secrets if s and len(s) >= 4)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, self.MASK)
        return text


# One per process: everything that leaves it (errors, --debug logs, tracebacks) passes here.
SECRETS = Redactor()


class Interrupted(BaseException):
    """A signal that arrived while nothing was in hand (connecting, asking the API)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def url_password(url: str) -> str | None:
    """The password in a URL (`amqps://user:secret@host`), to be masked wherever it shows."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None
