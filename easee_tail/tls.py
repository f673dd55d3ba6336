"""One TLS policy for the API and the broker: verified, host name checked, TLS 1.2 or newer."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

from easee_tail.errors import TlsFailure, Unreachable


def client_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """The system trust store, plus the CA in `ca_file` when one is given.

    `insecure` (--insecure, which warns on every start) turns verification off altogether.
    """
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as problem:
            raise TlsFailure(
                f"cannot load the CA file {ca_file}: {problem.strerror or problem}"
            ) from None
    return context


def describe_tls_error(problem: BaseException) -> str:
    """A short reason for a TLS failure, from the innermost SSL error."""
    seen: set[int] = set()
    current: BaseException | None = problem
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or "certificate verify failed"
        if isinstance(current, ssl.SSLError):
            return current.reason or str(current)
        nested = [arg for arg in current.args if isinstance(arg, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            nested.insert(0, reason)
        current = nested[0] if nested else (current.__cause__ or current.__context__)
    text = str(problem)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed"
    return "handshake failed"


@dataclass(frozen=True)
class PeerCertificate:
    subject: str  # the commonName, or "" when verification was off (--insecure)
    issuer: str
    not_after: datetime | None  # None when verification was off


def peer_certificate(host: str, port: int, context: ssl.SSLContext,
                     timeout: float = 10.0) -> PeerCertificate:
    """Handshake with host:port as the given context would, and read the certificate it shows."""
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            certificate = tls.getpeercert()
    except ssl.SSLCertVerificationError as problem:
        raise TlsFailure(f"the certificate of {where} does not verify "
                         f"({describe_tls_error(problem)})") from None
    except ssl.SSLError as problem:
        raise TlsFailure(f"the TLS handshake with {where} failed "
                         f"({describe_tls_error(problem)})") from None
    except OSError as problem:
        raise Unreachable(f"cannot connect to {where}: {problem.strerror or problem}") from None
    if not certificate:
        return PeerCertificate("", "", None)
    expires = ssl.cert_time_to_seconds(str(certificate["notAfter"]))
    return PeerCertificate(_name(certificate.get("subject")), _name(certificate.get("issuer")),
                           datetime.fromtimestamp(expires, UTC))


def _name(parts: object) -> str:
    for rdn in parts if isinstance(parts, tuple) else ():
        for key, value in rdn:
            if key in ("commonName", "organizationName"):
                return str(value)
    return "?"
