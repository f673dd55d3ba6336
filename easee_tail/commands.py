"""What each command does once click has parsed its options: cli.py declares the commands
and calls these (imported only when a command runs, so that --help, --version and shell
completion start fast). Each renders through the module its output belongs to.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any

import click

from easee_tail.access import Access
from easee_tail.details import ConnectionDetails, parse_amqp_url
from easee_tail.environment import Environment
from easee_tail.errors import EaseeTailError, Redactor, url_password
from easee_tail.reporter import Reporter
from easee_tail.run import RunSpec, consume
from easee_tail.source import Source
from easee_tail.source.reconnect import Backoff
from easee_tail.text import plural, visible

# Each command imports the rest of what it needs itself: a run with --amqp-url loads no
# HTTP client, the tail no rich unless it draws a table, and only doctor the checks.


def tail(ctx: click.Context, options: dict[str, Any]) -> None:
    from easee_tail.source.broker import BrokerSource
    from easee_tail.source.reconnect import ReconnectingSource
    reporter = Reporter(Environment.from_process())
    access = Access(reporter)
    access.check_password_source(ctx, options)
    spec = RunSpec.take(options)
    broker = {name: options.pop(name) for name in (
        "prefetch", "allow_shared", "peek", "no_reconnect", "max_retries", "heartbeat",
        "stream_offset")}
    details = access.details_getter(**options)
    peek, ca_file, insecure = broker["peek"], options["ca_file"], options["insecure"]

    def open_broker(refresh: bool, quiet: bool) -> tuple[BrokerSource, int]:
        details_now = details(refresh)
        if not details_now.use_ssl and not quiet:
            reporter.warn(f"the connection details ask for a plain (unencrypted) connection to "
                          f"{details_now.server}: the stream is readable on the network")
        source = BrokerSource(details_now, ca_file=ca_file, prefetch=broker["prefetch"],
                              insecure=insecure, heartbeat=broker["heartbeat"], peek=peek,
                              stream_offset=broker["stream_offset"])
        try:
            state = source.open(allow_shared=broker["allow_shared"])
        except BaseException:
            source.close()
            raise
        if peek and not quiet:
            reporter.warn("--peek: every message shown goes back to the queue, but the other "
                          "consumers get it later and marked redelivered, and easee-tail sees "
                          "only the messages the broker offers it (see README)")
        elif state.consumers and not quiet:
            reporter.warn(f"{plural(state.consumers, 'other consumer')} share "
                          f"{details_now.queue}: messages shown here do not reach them")
        if state.messages and not quiet:
            reporter.info(f"{plural(state.messages, 'message')} "
                          f"{'is' if state.messages == 1 else 'are'} waiting in "
                          f"{details_now.queue}")
        return source, state.messages

    def open_source() -> tuple[Source, int]:
        first, backlog = open_broker(refresh=False, quiet=False)
        if broker["no_reconnect"]:
            return first, backlog

        def reopen(refresh: bool) -> Source:
            with reporter.stop.interruptible():  # nothing is in hand while connecting
                return open_broker(refresh, quiet=True)[0]

        return ReconnectingSource(
            first, reopen, Backoff(max_retries=broker["max_retries"]), reporter.notice,
            can_refresh=options["amqp_url"] is None), backlog

    consume(reporter, spec, open_source, removes=not peek)


def demo(ctx: click.Context, charger_count: int, rate: float, seed: int | None,
         time_scale: float, options: dict[str, Any]) -> None:
    if options["exit_at_end"]:
        raise click.UsageError("--exit-at-end needs a queue: the demo has no backlog to end")
    from easee_tail.fleet import Fleet
    from easee_tail.source.demo import DemoSource
    reporter = Reporter(Environment.from_process())
    if options["chargers"] and \
            ctx.get_parameter_source("chargers") is click.core.ParameterSource.DEFAULT_MAP:
        reporter.info("the profile's charger filter does not apply to the demo: its chargers "
                      "are invented (give --charger to filter them)")
        options["chargers"] = ()
    source = DemoSource(Fleet(charger_count, seed=seed, time_scale=time_scale), rate)
    consume(reporter, RunSpec.take(options), lambda: (source, None))


def replay(paths: tuple[str, ...], speed: float | None, options: dict[str, Any]) -> None:
    from easee_tail.captures.files import open_captures
    from easee_tail.captures.reader import Reader
    from easee_tail.source.replay import ReplaySource
    env = Environment.from_process()
    reporter = Reporter(env)
    if not paths:
        if env.stdin_isatty:
            raise click.UsageError("give a FILE (or - and pipe JSON lines in)")
        paths = ("-",)
    spec = RunSpec.take(options)
    table_shown = env.stdout_isatty and not spec.output.jsonl and not spec.output.line_format
    pace = speed if speed is not None else (1.0 if table_shown else None)
    sources: list[ReplaySource] = []

    def open_source() -> tuple[Source, None]:
        reader = Reader(open_captures(paths, env.stdin.buffer), spec.selection.sieve(),
                        reporter.notice, count_lines=True)
        sources.append(ReplaySource(reader, pace))
        return sources[0], None

    consume(reporter, spec, open_source, decoder=lambda delivery: sources[0].record(delivery),
            live=False, passed_over=lambda: sources[0].passed_over() if sources else 0)


def connection(ctx: click.Context, as_json: bool, show_secrets: bool,
               options: dict[str, Any]) -> None:
    reporter = Reporter(Environment.from_process())
    access = Access(reporter)
    access.check_password_source(ctx, options)
    try:
        details = access.details_getter(**options)(False)
    except EaseeTailError as problem:
        reporter.fail(problem.message, problem.exit_code)
    if show_secrets:
        reporter.warn("--show-secrets: the broker password is in this output; keep it private")
    fields = details.fields(details.password if show_secrets else Redactor.MASK,
                            masked=not show_secrets)
    out = reporter.env.stdout
    if as_json:
        out.write(json.dumps(fields, indent=2) + "\n")
    else:
        width = max(map(len, fields))  # the API's texts, shown with their controls visible
        out.write("".join(f"{key:<{width}}  {visible(str(value))}\n"
                          for key, value in fields.items()))


def doctor_check(ctx: click.Context, jsonl: bool, strict: bool,
                 options: dict[str, Any]) -> None:
    from easee_tail import doctor
    from easee_tail.credentials import EaseeApi, StreamCredentials
    reporter = Reporter(Environment.from_process())
    access = Access(reporter)
    access.check_password_source(ctx, options)
    credentials: StreamCredentials | ConnectionDetails | EaseeApi
    if options["token"] or options["username"] or options["amqp_url"]:
        credentials = access.credentials(**options)
    else:  # none given: the API can still be looked at
        credentials = access.api(options["api_url"], options["ca_file"], options["insecure"])
    target = doctor.Target(credentials, options["ca_file"], options["insecure"])
    reporter.stop.install()
    code = doctor.check(reporter.env, target, jsonl, strict,
                        lambda result: replace(result, detail=reporter.redact(result.detail)))
    sys.exit(code)


def show_profiles(as_json: bool, known: set[str]) -> None:
    from easee_tail import profiles
    profiles.show(Environment.from_process(), known, as_json)


def logout(username: str | None) -> None:
    from easee_tail.token_cache import TokenCache
    reporter = Reporter(Environment.from_process())
    cache = TokenCache(warn=reporter.warn)
    try:
        removed = cache.remove(username)
    except EaseeTailError as problem:
        reporter.fail(problem.message, problem.exit_code)
    whose = f" of {username}" if username else ""
    reporter.info(f"removed {plural(removed, 'cached token')}{whose} from {cache.path}"
                  if removed else f"no cached tokens{whose} in {cache.path}")


def publish(amqp_url: str, queue: str | None, exchange: str | None, ca_file: str | None,
            charger_count: int, rate: float, delay_ms: tuple[float, float], seed: int | None,
            count: int | None, duration: float | None, time_scale: float, no_reconnect: bool,
            max_retries: int | None) -> None:
    """`easee-tail simulate`."""
    from easee_tail import simulate
    from easee_tail.fleet import Fleet
    from easee_tail.source.broker import connect
    if (queue is None) == (exchange is None):
        raise click.UsageError("give --queue or --exchange (one of them)")
    if delay_ms[0] > delay_ms[1]:
        raise click.BadParameter("MIN is above MAX", param_hint="--delay-ms")
    if no_reconnect and max_retries is not None:
        raise click.UsageError("--max-retries counts reconnection attempts; --no-reconnect "
                               "makes none (give one of them)")
    reporter = Reporter(Environment.from_process())
    reporter.redact.add(url_password(amqp_url))
    try:
        details = parse_amqp_url(amqp_url, queue or "")
    except ValueError as problem:
        raise click.BadParameter(str(problem), param_hint="--amqp-url") from None
    reporter.stop.install()
    fleet = Fleet(charger_count, seed=seed, delay_ms=delay_ms, time_scale=time_scale)
    try:
        sent = simulate.publish(
            lambda: connect(details, ca_file, name="easee-tail simulate"), fleet,
            simulate.Target(queue, exchange), rate, count, duration,
            lambda sent: reporter.info(f"{sent:,} messages published"), reporter.warn,
            None if no_reconnect else Backoff(max_retries=max_retries))
    except EaseeTailError as problem:
        reporter.fail(problem.message, problem.exit_code)
    where = f"queue {queue}" if queue else f"exchange {exchange}"
    reporter.info(f"{plural(sent, 'message')} from {plural(charger_count, 'charger')} "
                  f"published to {details.display_url} ({where})")
