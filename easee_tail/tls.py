"""One TLS policy for the API and the broker: verified, host name checked, TLS 1.2 or newer."""

from __future__ import annotations

import ssl

from easee_tail.errors import TlsFailure


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
