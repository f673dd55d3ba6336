"""The stream's connection details (what the Easee API replies, or what --amqp-url says)
and the URLs they make, passwords masked where shown. Light: no HTTP client, so that a run
with --amqp-url never loads one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from easee_tail.errors import Redactor


@dataclass(frozen=True)
class ConnectionDetails:
    server: str
    port: int
    use_ssl: bool
    virtual_host: str
    queue: str
    exchange: str | None
    username: str
    password: str = field(repr=False)

    @property
    def display_url(self) -> str:
        """The broker address as it may be shown: never with the password."""
        return self.url(password=None)

    def fields(self, password: str, masked: bool) -> dict[str, object]:
        """`easee-tail connection`: the details keyed as the Easee API keys them, and a URL
        that --amqp-url takes (its password masked unless `masked` is False)."""
        return {
            "server": self.server, "port": self.port, "useSsl": self.use_ssl,
            "virtualHost": self.virtual_host, "queueName": self.queue,
            "exchangeName": self.exchange, "username": self.username, "password": password,
            "url": self.url(self.password, masked=masked),
        }

    def url(self, password: str | None, *, masked: bool = False) -> str:
        """An amqp(s) URL that parse_amqp_url reads back; `password` in it only if given,
        or `masked`: a placeholder where it would be."""
        scheme = "amqps" if self.use_ssl else "amqp"
        vhost = "" if self.virtual_host == "/" else "/" + quote(self.virtual_host, safe="")
        user = quote(self.username, safe="")
        shown = Redactor.MASK if masked else None if password is None else quote(password, safe="")
        secret = "" if shown is None else ":" + shown
        return f"{scheme}://{user}{secret}@{self.server}:{self.port}{vhost}"


def parse_amqp_url(url: str, queue: str) -> ConnectionDetails:
    """`amqps://user:pass@host:port/vhost` (amqp:// for plain connections)."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError("the AMQP URL must start with amqps:// (or amqp:// for a plain connection)")
    if not parts.hostname:
        raise ValueError("the AMQP URL names no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the AMQP URL has an invalid port") from None
    use_ssl = parts.scheme == "amqps"
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return ConnectionDetails(
        server=parts.hostname,
        port=port or (5671 if use_ssl else 5672),
        use_ssl=use_ssl,
        virtual_host=vhost,
        queue=queue,
        exchange=None,
        username=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
    )


def mask_url(url: str) -> str:
    """A URL with any password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:****@{netloc}").geturl()
