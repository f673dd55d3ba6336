"""`easee-tail doctor`: every step from the API to the queue, checked in order, with advice.

Each check reports as it finishes. The first failure stops the checks that need it (they
are reported as skipped); the exit code is that of the first check that did not pass,
the same code `easee-tail` itself would have exited with. Nothing is consumed: the queue
is looked at with a passive declare.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from easee_tail.credentials import EaseeApi, StreamCredentials
from easee_tail.details import ConnectionDetails
from easee_tail.environment import Environment
from easee_tail.errors import (
    CredentialsRejected,
    EaseeTailError,
    ExitCode,
    IncompleteDetails,
    NotIntegrationAccount,
    Unreachable,
)
from easee_tail.source.broker import connect, queue_state
from easee_tail.text import plural, visible
from easee_tail.tls import PeerCertificate, client_context, peer_certificate

Status = Literal["pass", "warn", "fail", "skip"]
EXPIRY_WARNING_DAYS = 14

CHECKS = (
    "API reachable",
    "credentials accepted",
    "integration account",
    "connection details complete",
    "broker reachable",
    "TLS certificate",
    "AMQP login",
    "queue exists",
    "no other consumers",
    "backlog",
)

ADVICE = {
    "API reachable": "check --api-url and the network path to it (easee-tail ignores "
                     "HTTP(S)_PROXY); pass --ca-file if the API uses a private CA",
    "credentials accepted": "pass --token (or EASEE_TOKEN) or --username (or EASEE_USERNAME) "
                            "of an integration account; tokens expire: get a new one, or use "
                            "--username to log in",
    "integration account": "the stream needs an integration (partner) account's login; "
                           "ask Easee for partner access if you have none",
    "connection details complete": "the Easee API answered without what a connection needs: "
                                   "report it to Easee partner support",
    "broker reachable": "allow outbound TCP to the broker's port (5671) on your firewall",
    "TLS certificate": "pass --ca-file if the broker uses a private CA; check this "
                       "machine's clock",
    "AMQP login": "the broker password may have been rotated: run again to fetch new "
                  "details; check the virtual host",
    "queue exists": "the queue named in the connection details is missing: ask Easee "
                    "partner support",
    "no other consumers": "another consumer (your service?) takes messages from this queue: "
                          "easee-tail would take its messages; use --peek to look without "
                          "taking, or stop the other consumer, or --allow-shared",
    "backlog": "",
}


@dataclass(frozen=True)
class Result:
    check: str
    status: Status
    detail: str
    advice: str = ""
    exit_code: int = ExitCode.OK

    def as_json(self) -> dict[str, object]:
        return {"check": self.check, "status": self.status, "detail": self.detail,
                "advice": self.advice or None, "exit_code": self.exit_code}


@dataclass(frozen=True)
class Target:
    """What to check: the API and its credentials, or connection details given directly."""

    credentials: StreamCredentials | ConnectionDetails | EaseeApi  # an API alone: none given
    ca_file: str | None
    insecure: bool


class _Stop(Exception):
    """A check failed: the checks that need it are skipped."""


class Doctor:
    def __init__(self, target: Target, report: Callable[[Result], None]) -> None:
        self._target = target
        self._report = report
        self.results: list[Result] = []

    def exit_code(self, strict: bool = False) -> int:
        """That of the first check that failed (or warned, when strict); else 0."""
        bad = ("fail", "warn") if strict else ("fail",)
        return next((r.exit_code for r in self.results if r.status in bad), ExitCode.OK)

    def run(self) -> list[Result]:
        try:
            details = self._details()
            self._broker(details)
        except _Stop:
            done = {result.check for result in self.results}
            failed = self.results[-1].check
            for check in CHECKS:
                if check not in done:
                    self._add(check, "skip", f"not checked: {failed} did not pass")
        return self.results

    def _add(self, check: str, status: Status, detail: str,
             exit_code: int = ExitCode.OK) -> None:
        advice = ADVICE[check] if status in ("fail", "warn") else ""
        result = Result(check, status, detail, advice, exit_code)
        self.results.append(result)
        self._report(result)

    def _fail(self, check: str, problem: EaseeTailError) -> _Stop:
        # an error's own advice (after "; ") gives way to the check's, said once below
        detail = problem.message.split("; ")[0] if ADVICE[check] else problem.message
        self._add(check, "fail", detail, problem.exit_code)
        return _Stop()

    def _details(self) -> ConnectionDetails:
        credentials = self._target.credentials
        if isinstance(credentials, ConnectionDetails):
            for check in CHECKS[:4]:
                self._add(check, "skip", "not asked: --amqp-url gives the connection details")
            return credentials
        api = credentials if isinstance(credentials, EaseeApi) else credentials.api
        started = time.monotonic()
        try:
            status = api.ping()
        except EaseeTailError as problem:
            raise self._fail("API reachable", problem) from None
        self._add("API reachable", "pass", f"{api.base_url} answered (HTTP {status}) in "
                                           f"{(time.monotonic() - started) * 1000:.0f} ms")
        if isinstance(credentials, EaseeApi):
            self._add("credentials accepted", "fail", "none given", ExitCode.USAGE)
            raise _Stop()
        try:
            details = credentials.details()
        except CredentialsRejected as problem:
            raise self._fail("credentials accepted", problem) from None
        except NotIntegrationAccount as problem:
            self._add("credentials accepted", "pass", "the API accepted the credentials")
            raise self._fail("integration account", problem) from None
        except IncompleteDetails as problem:
            self._add("credentials accepted", "pass", "the API accepted the credentials")
            self._add("integration account", "pass", "the stream endpoint answered")
            raise self._fail("connection details complete", problem) from None
        except EaseeTailError as problem:  # 429, 5xx, not JSON: the API's answer is the issue
            raise self._fail("credentials accepted", problem) from None
        self._add("credentials accepted", "pass", "the API accepted the credentials")
        self._add("integration account", "pass", "the stream endpoint answered")
        self._add("connection details complete", "pass",
                  f"{details.display_url}, queue {details.queue}"
                  + ("" if details.use_ssl else " (plain AMQP, no TLS)"))
        return details

    def _broker(self, details: ConnectionDetails) -> None:
        target = self._target
        where = f"{details.server}:{details.port}"
        started = time.monotonic()
        try:
            socket.create_connection((details.server, details.port), timeout=10).close()
        except OSError as problem:
            reason = "the host name does not resolve" if isinstance(problem, socket.gaierror) \
                else (problem.strerror or str(problem) or type(problem).__name__).lower()
            raise self._fail("broker reachable", Unreachable(
                f"cannot connect to the broker {where}: {reason}")) from None
        self._add("broker reachable", "pass", f"{where} accepted a TCP connection in "
                                              f"{(time.monotonic() - started) * 1000:.0f} ms")
        if details.use_ssl:
            try:
                certificate = peer_certificate(
                    details.server, details.port, client_context(target.ca_file, target.insecure))
            except EaseeTailError as problem:
                raise self._fail("TLS certificate", problem) from None
            self._certificate(details, certificate)
        else:
            self._add("TLS certificate", "warn", "the connection details ask for plain AMQP: "
                                                 "the stream and its password travel unencrypted",
                      ExitCode.TLS)
        try:
            connection = connect(details, target.ca_file, target.insecure,
                                 name="easee-tail doctor")
        except EaseeTailError as problem:
            raise self._fail("AMQP login", problem) from None
        try:
            self._add("AMQP login", "pass", f"logged in as {details.username!r} on virtual host "
                                            f"{details.virtual_host!r}")
            try:
                state = queue_state(connection.channel(), details)
            except EaseeTailError as problem:
                raise self._fail("queue exists", problem) from None
            self._add("queue exists", "pass", details.queue)
            if state.consumers:
                self._add("no other consumers", "warn",
                          f"{plural(state.consumers, 'consumer')} attached to {details.queue}",
                          ExitCode.QUEUE_SHARED)
            else:
                self._add("no other consumers", "pass", "none attached")
            self._add("backlog", "pass", f"{plural(state.messages, 'message')} waiting")
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def _certificate(self, details: ConnectionDetails, certificate: PeerCertificate) -> None:
        not_after = certificate.not_after
        if not_after is None:
            self._add("TLS certificate", "warn", "not verified (--insecure)", ExitCode.TLS)
            return
        days = (not_after - datetime.now(UTC)).total_seconds() / 86400
        text = (f"valid for {details.server} ({certificate.subject}, issued by "
                f"{certificate.issuer}); expires "
                f"{not_after:%Y-%m-%d} (in {days:.0f} days)")
        if days < EXPIRY_WARNING_DAYS:
            self._add("TLS certificate", "warn", text + ": soon", ExitCode.TLS)
        else:
            self._add("TLS certificate", "pass", text)


_MARKS: dict[Status, tuple[str, str]] = {
    "pass": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"), "skip": ("–", "dim"),
}


def checklist_line(result: Result, wrap: bool = False) -> Text | Table:
    """One check as a person reads it: mark, name, what was found; the advice below. On a
    terminal (`wrap`) the text wraps at word boundaries within its column; piped, each
    check stays one line (and its advice the next) for grep."""
    mark, style = _MARKS[result.status]
    name_style = "bold" if result.status != "skip" else "dim"
    detail = Text(visible(result.detail), style="dim" if result.status == "skip" else "")
    if not wrap:
        line = Text()
        line.append(f"{mark} ", style=f"bold {style}")
        line.append(f"{result.check:<30}", style=name_style)
        line.append(detail)
        if result.advice:
            line.append(f"\n  {'':<30}→ {visible(result.advice)}", style=style)
        return line
    if result.advice:
        detail.append(f"\n→ {visible(result.advice)}", style=style)
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(width=1, no_wrap=True)
    grid.add_column(width=29, no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    grid.add_row(Text(mark, style=f"bold {style}"), Text(result.check, style=name_style),
                 detail)
    return grid


def check(env: Environment, target: Target, jsonl: bool, strict: bool,
          clean: Callable[[Result], Result]) -> int:
    """`easee-tail doctor`: each check as it completes (a checklist on a terminal, a JSON
    line each with --jsonl), `clean` masking what it says; the exit code."""
    out = Console(file=env.stdout, no_color=env.no_color, highlight=False, markup=False,
                  soft_wrap=not env.stdout_isatty)

    def report(result: Result) -> None:
        result = clean(result)
        if jsonl:
            env.stdout.write(json.dumps(result.as_json()) + "\n")
            env.stdout.flush()
        else:
            out.print(checklist_line(result, wrap=env.stdout_isatty))

    if not jsonl:
        credentials = target.credentials
        checked = "direct AMQP URL" if isinstance(credentials, ConnectionDetails) \
            else credentials.base_url if isinstance(credentials, EaseeApi) \
            else credentials.api.base_url
        out.print(f"easee-tail doctor: {visible(checked)}", style="bold")
    checker = Doctor(target, report)
    checker.run()
    return checker.exit_code(strict)
