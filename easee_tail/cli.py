"""Command-line interface: parse options, build the pipeline, map failures to exit codes.

Nothing here decides how to decode, filter or draw; it wires the stages together.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

import click
from click.shell_completion import CompletionItem
from rich.console import Console

from easee_tail import (
    __version__,
    analyse,
    catalogue,
    completion,
    describe,
    doctor,
    profiles,
    simulate,
)
from easee_tail.credentials import (
    ConnectionDetails,
    EaseeApi,
    Login,
    StreamCredentials,
    mask_url,
    parse_amqp_url,
)
from easee_tail.decode import decode
from easee_tail.environment import Environment
from easee_tail.errors import SECRETS, EaseeTailError, ExitCode, MissingPassword, Redactor
from easee_tail.filters import (
    TIME_FIELDS,
    Condition,
    FilterSpec,
    build_filter,
    could_be_serial,
    split_negated,
)
from easee_tail.fleet import Fleet
from easee_tail.format import summary
from easee_tail.keys import Keys
from easee_tail.model import Delivery, Record
from easee_tail.options import (
    QUIET,
    capture_options,
    complete_observations,
    credential_options,
    debug_option,
    output_options,
    profile_keys,
    profile_option,
    quiet_option,
    refuse_nonsense,
    resolve_observations,
)
from easee_tail.params import Duration, FiniteFloat
from easee_tail.pipeline import Ending, Interrupted, Limits, StopRequest, run
from easee_tail.sinks import Sink
from easee_tail.sinks.jsonl import JsonlSink, LineEncoder
from easee_tail.sinks.table import StateOptions, TableSink
from easee_tail.sinks.template import Template
from easee_tail.source import Source
from easee_tail.source.broker import DEFAULT_PREFETCH, HEARTBEAT, BrokerSource, connect
from easee_tail.source.demo import DemoSource
from easee_tail.source.reconnect import Backoff, ReconnectingSource
from easee_tail.source.replay import ReplaySource, open_files
from easee_tail.state import FleetState, groups
from easee_tail.stats import FilterNotice, Stats, StatsLines, Tally
from easee_tail.story import LiveStory, story_data
from easee_tail.text import plural, visible
from easee_tail.token_cache import TokenCache

# SIGINT, SIGTERM, SIGHUP: 128 + the number, as shells report them. SIGPIPE means the reader
# went away, which is how `| head` ends: 0, as when a write finds the pipe closed.
SIGNAL_EXIT: dict[int, ExitCode] = {
    signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED,
    signal.SIGHUP: ExitCode.HANGUP, signal.SIGPIPE: ExitCode.OK,
}


def _examples(*rows: tuple[str, str]) -> str:
    return "\b\nExamples:\n" + "\n".join(f"  {command}\n      {why}" for command, why in rows)


# Each command's help ends with examples (click prints the epilog as it is after \b).
EXAMPLES = {
    'tail': _examples(
        ('easee-tail --token "$EASEE_TOKEN"',
         'your chargers, live (a table, or JSON lines when piped)'),
        ('easee-tail -s EH8KWDB8 -o ChargerOpMode,ReasonForNoCurrent -f short',
         'why is it not charging?'),
        ('easee-tail -e -j -w backlog.jsonl',
         'what was waiting, saved, then exit'),
    ),
    'demo': _examples(
        ('easee-tail demo',
         'a simulated fleet in the live table'),
        ('easee-tail demo --view state --chargers 3',
         'the latest values per charger'),
        ("easee-tail demo -j -c 20 | jq -c '{charger, name, value}'",
         'JSON lines for jq'),
    ),
    'replay': _examples(
        ('easee-tail replay monday.jsonl --speed 10',
         'a capture at ten times its pace'),
        ('easee-tail replay monday.jsonl -s EH8KWDB8 -o 109 -f short',
         "one charger's op modes, as lines"),
        ('easee-tail -j | easee-tail replay -',
         'from stdin'),
    ),
    'timeline': _examples(
        ('easee-tail timeline monday.jsonl -s EH8KWDB8',
         'what changed on one charger, and for how long each state held'),
        ("easee-tail timeline monday.jsonl --since '2026-11-24T14:00' --until 16:00 -o 109",
         'its op modes in a window'),
        ('easee-tail -j | easee-tail timeline --json',
         'from stdin, as JSON lines'),
    ),
    'sessions': _examples(
        ('easee-tail sessions monday.jsonl',
         'every charging session, and how each ended'),
        ("easee-tail sessions monday.jsonl -s EH8KWDB8 | jq -r .ended",
         "why did this charger stop?"),
    ),
    'connection': _examples(
        ('easee-tail connection',
         'the details, password masked'),
        ('easee-tail connection --json --show-secrets | jq -r .url',
         'a URL for other tools'),
    ),
    'doctor': _examples(
        ('easee-tail doctor',
         'every step from the API to the queue'),
        ('easee-tail doctor --jsonl | jq -r \'select(.status != "pass") | .check\'',
         'what failed'),
    ),
    'profiles': _examples(
        ('easee-tail profiles',
         'the config file and its profiles'),
        ('easee-tail --profile work --view state',
         'use one'),
    ),
    'logout': _examples(
        ('easee-tail logout',
         'forget every cached token'),
        ('easee-tail logout --username partner@example.com',
         "one login's"),
    ),
    'simulate': _examples(
        ('easee-tail simulate --amqp-url amqps://guest:guest@localhost:5671/ --queue test.Q',
         'a fleet into a queue'),
        ('easee-tail simulate --amqp-url "$URL" --exchange amq.topic --rate 200 --duration 1m',
         'into an exchange, for a minute'),
    ),
    'completion': _examples(
        ('easee-tail completion bash > ~/.local/share/bash-completion/completions/easee-tail',
         'bash'),
        ('easee-tail completion fish > ~/.config/fish/completions/easee-tail.fish',
         'fish'),
    ),
    'observations': _examples(
        ('easee-tail observations',
         'the catalogue'),
        ('easee-tail observations --all | grep -i temp',
         "with Easee's wider list"),
        ('easee-tail observations ChargerOpMode 96',
         'two in full, with their values'),
        ("easee-tail observations --json | jq '.[].name'",
         'for programs'),
    ),
}


class DefaultGroup(click.Group):
    """`easee-tail [OPTIONS]` tails; `easee-tail demo` and friends are subcommands."""

    default_command = "tail"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `tail` takes no arguments, so only options (or nothing) mean the default command.
        # While completing the first word (`easee-tail do<TAB>`) nothing is inserted, so
        # that the subcommand names are offered.
        if (not args and not ctx.resilient_parsing) or (
                args and args[0].startswith("-") and args[0] not in ("-h", "--help", "--version")):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The group's help, then the default command's options: `easee-tail --help` is
        what most people read first."""
        super().format_help(ctx, formatter)
        default = self.commands[self.default_command]
        rows = [row for param in default.get_params(ctx)
                if (row := param.get_help_record(ctx)) is not None]
        with formatter.section(f"Options of `easee-tail [OPTIONS]` (the {self.default_command} "
                               "command)"):
            formatter.write_dl(rows)
        if default.epilog:
            formatter.write_paragraph()
            formatter.write_text(default.epilog)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """The subcommands, and for an option at the first word the default command's."""
        items = super().shell_complete(ctx, incomplete)
        if incomplete.startswith("-"):
            default = self.commands[self.default_command]
            with default.make_context(self.default_command, [], parent=ctx,
                                      resilient_parsing=True) as default_ctx:
                items += default.shell_complete(default_ctx, incomplete)
        return items


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                  "max_content_width": 100})
@click.version_option(__version__, prog_name="easee-tail")
def main() -> None:
    """Tail the Easee charger cloud's AMQP observation stream.

    \b
    easee-tail --token TOKEN             watch your chargers (live table, or JSONL when piped)
    easee-tail demo                      the same on a simulated fleet: no account needed
    easee-tail --obs ChargerOpMode | jq  filter and pipe
    """


def _stream_offset(_ctx: click.Context, _param: click.Parameter, value: str | None
                   ) -> str | int | None:
    if value is None or value in ("first", "last", "next"):
        return value
    if value.isdecimal():
        return int(value)
    raise click.BadParameter("give first, last, next or an offset (a whole number)")


@main.command("tail", epilog=EXAMPLES["tail"])
@profile_option
@credential_options
@click.option("--prefetch", type=click.IntRange(1, 65535), default=DEFAULT_PREFETCH,
              show_default=True, help="Unacknowledged messages the broker may send ahead.")
@click.option("--allow-shared", is_flag=True,
              help="Consume even when other consumers are attached (they lose the messages "
                   "easee-tail takes).")
@click.option("--peek", is_flag=True,
              help="Look without taking: every message goes back to the queue after it is shown "
                   "(prefetch 1). Costs other consumers delay; see README.")
@click.option("--stream-offset", metavar="first|last|next|N", callback=_stream_offset,
              help="For a stream queue: where to start reading (a consumer without it starts "
                   "at the next new message, so what was waiting is not shown).")
@click.option("--no-reconnect", is_flag=True,
              help="Exit (code 12) when the connection is lost instead of reconnecting.")
@click.option("--max-retries", type=click.IntRange(min=0), metavar="N",
              help="Give up (exit 12) after N reconnection attempts in a row [default: never].")
@click.option("--heartbeat", type=click.IntRange(1, 600), default=HEARTBEAT, show_default=True,
              metavar="SECONDS", help="AMQP heartbeat: a silent connection counts as lost after "
                                      "about this long plus a few seconds.")
@output_options
@click.pass_context
def tail_command(ctx: click.Context, /, **options: Any) -> None:
    """Consume the stream (the default command)."""
    refuse_nonsense(ctx, options)
    command = _Command(Environment.from_process())
    command.check_password_source(ctx, options)
    command.tail(**options)


@main.command("demo", epilog=EXAMPLES["demo"])
@profile_option
@click.option("--chargers", "charger_count", type=click.IntRange(1, 500), default=4,
              show_default=True, help="Chargers in the simulated fleet.")
@click.option("--rate", type=FiniteFloat(min=0, min_open=True, max=1_000_000), default=8.0,
              show_default=True, help="Messages per second.")
@click.option("--seed", type=int, help="Seed for a repeatable fleet (its trouble too).")
@click.option("--time-scale", type=FiniteFloat(min=0, min_open=True, max=100_000), default=1.0,
              metavar="N", help="Simulated time N times the clock's pace: 60 plays an hour "
                                "a minute.  [default: 1]")
@output_options
@click.pass_context
def demo_command(ctx: click.Context, /, charger_count: int, rate: float, seed: int | None,
                 time_scale: float, **options: Any) -> None:
    """Run the same pipeline on a simulated fleet, in-process: no account, no broker."""
    refuse_nonsense(ctx, options)
    if options["exit_at_end"]:
        raise click.UsageError("--exit-at-end needs a queue: the demo has no backlog to end")
    command = _Command(Environment.from_process())
    if options["chargers"] and \
            ctx.get_parameter_source("chargers") is click.core.ParameterSource.DEFAULT_MAP:
        command.info("the profile's charger filter does not apply to the demo: its chargers "
                     "are invented (give --charger to filter them)")
        options["chargers"] = ()
    source = DemoSource(Fleet(charger_count, seed=seed, time_scale=time_scale), rate)
    command.consume(lambda: (source, None), **options)


@main.command("replay", epilog=EXAMPLES["replay"])
@profile_option
@click.argument("paths", metavar="[FILE]...", nargs=-1,
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--speed", type=FiniteFloat(min=0, min_open=True), metavar="N",
              help="N times the original pace (default: as fast as possible when piped, "
                   "the original pace on a terminal).")
@output_options
@click.pass_context
def replay_command(ctx: click.Context, /, paths: tuple[str, ...], speed: float | None,
                   **options: Any) -> None:
    """Run JSON lines from --save (files, or stdin) through the same filters and views."""
    refuse_nonsense(ctx, options)
    env = Environment.from_process()
    command = _Command(env)
    if not paths:
        if env.stdin_isatty:
            raise click.UsageError("give a FILE (or - and pipe JSON lines in)")
        paths = ("-",)
    table_shown = env.stdout_isatty and not options["jsonl"] and not options["line_format"]
    pace = speed if speed is not None else (1.0 if table_shown else None)
    files = open_files(paths, env.stdin.buffer)
    source = ReplaySource(files, pace, command.notice)
    command.consume(lambda: (source, None), decoder=source.record, live=False, **options)


def _capture_paths(paths: tuple[str, ...]) -> tuple[str, ...]:
    if not paths and Environment.from_process().stdin_isatty:
        raise click.UsageError("give a FILE (or - and pipe JSON lines in)")
    return paths


@main.command("timeline", epilog=EXAMPLES["timeline"])
@click.argument("paths", metavar="[FILE]...", nargs=-1,
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@capture_options(observations=True)
def timeline_command(paths: tuple[str, ...], chargers: tuple[str, ...],
                     observations: tuple[tuple[int, ...], tuple[int, ...]],
                     since: datetime | None, until: datetime | None, time_field: str,
                     as_json: bool) -> None:
    """Each charger's story from captures: what changed, when, and how long it held."""
    wanted, unwanted = observations
    data = analyse.story_ids()
    listed = [number for number in (wanted or sorted(data)) if number not in unwanted]
    command = _Command(Environment.from_process())
    analyse.timeline(command.env, analyse.Reading(
        _capture_paths(paths), chargers, since, until, time_field, as_json), listed,
        command.warn)


@main.command("sessions", epilog=EXAMPLES["sessions"])
@click.argument("paths", metavar="[FILE]...", nargs=-1,
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@capture_options(observations=False)
def sessions_command(paths: tuple[str, ...], chargers: tuple[str, ...],
                     since: datetime | None, until: datetime | None, as_json: bool) -> None:
    """Charging sessions from captures: start, stop, energy, peak power, and how each ended.

    --since and --until keep the sessions that ran at some moment between them, by the
    charger's clock."""
    command = _Command(Environment.from_process())
    analyse.charging_sessions(command.env, analyse.Reading(
        _capture_paths(paths), chargers, since, until, as_json=as_json), command.warn)


@main.command("connection", epilog=EXAMPLES["connection"])
@debug_option
@profile_option
@credential_options
@click.option("--json", "as_json", is_flag=True, help="As JSON, keyed as the Easee API keys it.")
@click.option("--show-secrets", is_flag=True,
              help="Print the broker password too (with a warning): for other tools.")
@click.pass_context
def connection_command(
    ctx: click.Context, /, as_json: bool, show_secrets: bool, **options: Any
) -> None:
    """Print the stream's connection details, password masked (no broker connection)."""
    command = _Command(Environment.from_process())
    command.check_password_source(ctx, options)
    try:
        details = command.details_getter(**options)(False)
    except EaseeTailError as problem:
        command.fail(problem.message, problem.exit_code)
    password = details.password if show_secrets else Redactor.MASK
    if show_secrets:
        command.warn("--show-secrets: the broker password is in this output; keep it private")
    fields = {
        "server": details.server, "port": details.port, "useSsl": details.use_ssl,
        "virtualHost": details.virtual_host, "queueName": details.queue,
        "exchangeName": details.exchange, "username": details.username, "password": password,
        "url": details.url(details.password, masked=not show_secrets),
    }
    env = command.env
    if as_json:
        env.stdout.write(json.dumps(fields, indent=2) + "\n")
    else:
        width = max(map(len, fields))  # the API's texts, shown with their controls visible
        env.stdout.write("".join(f"{key:<{width}}  {visible(str(value))}\n"
                                 for key, value in fields.items()))


@main.command("doctor", epilog=EXAMPLES["doctor"])
@debug_option
@profile_option
@credential_options
@click.option("--jsonl", is_flag=True, help="Each check as a JSON line on stdout.")
@click.option("--strict", is_flag=True,
              help="A warning (a certificate about to expire, another consumer) fails too.")
@click.pass_context
def doctor_command(ctx: click.Context, /, jsonl: bool, strict: bool, **options: Any) -> None:
    """Check every step from the API to the queue, with advice for each failure.

    Exit 0 when no check failed (warnings too, with --strict); otherwise the code
    easee-tail would exit with. Without credentials it checks what it can. Nothing is
    consumed.
    """
    command = _Command(Environment.from_process())
    command.check_password_source(ctx, options)
    credentials: StreamCredentials | ConnectionDetails | EaseeApi
    if options["token"] or options["username"] or options["amqp_url"]:
        credentials = command.credentials(**options)
    else:  # none given: the API can still be looked at
        credentials = command.api(options["api_url"], options["ca_file"], options["insecure"])
    target = doctor.Target(credentials, options["ca_file"], options["insecure"])
    env = command.env
    out = Console(file=env.stdout, no_color=env.no_color, highlight=False, markup=False,
                  soft_wrap=not env.stdout_isatty)

    def report(result: doctor.Result) -> None:
        result = replace(result, detail=command.redact(result.detail))
        if jsonl:
            env.stdout.write(json.dumps(result.as_json()) + "\n")
            env.stdout.flush()
        else:
            out.print(doctor.checklist_line(result, wrap=env.stdout_isatty))

    if not jsonl:
        checked = "direct AMQP URL" if isinstance(credentials, ConnectionDetails) \
            else credentials.base_url if isinstance(credentials, EaseeApi) \
            else credentials.api.base_url
        out.print(f"easee-tail doctor: {visible(checked)}", style="bold")
    command.stop.install()
    checker = doctor.Doctor(target, report)
    checker.run()
    sys.exit(checker.exit_code(strict))


@main.command("profiles", epilog=EXAMPLES["profiles"])
@debug_option
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def profiles_command(as_json: bool) -> None:
    """Show the config file's profiles (precedence: flags, then environment, then profile)."""
    env = Environment.from_process()
    path = profiles.config_path()
    known = set(profile_keys(main))
    try:
        default, found = profiles.read(path)
    except profiles.ProfileError as problem:  # shown, not failed on: this is where to look
        if as_json:
            env.stdout.write(json.dumps({"path": str(path), "error": problem.message}) + "\n")
        else:
            env.stdout.write(f"{visible(str(path))}\n  cannot be used: "
                             f"{visible(problem.message)}\n")
        return
    if as_json:
        env.stdout.write(json.dumps({"path": str(path), "default": default, "profiles": {
            name: dict(profile.values) for name, profile in found.items()}}, indent=2) + "\n")
        return
    env.stdout.write(f"{path}{'' if path.exists() else ' (does not exist yet)'}\n")
    for name, profile in sorted(found.items()):
        env.stdout.write(f"\n[profile.{visible(name)}]{'  (default)' if name == default else ''}\n")
        for key, value in profile.values.items():
            mark = "" if key in known else "   <- unknown key: using this profile fails"
            env.stdout.write(f"  {visible(key)} = {visible(json.dumps(value, ensure_ascii=False))}"
                             f"{mark}\n")
    if not found:
        env.stdout.write("no profiles; see README (Profiles) for the format\n")


@main.command("logout", epilog=EXAMPLES["logout"])
@debug_option
@click.option("--username", envvar="EASEE_USERNAME", help="Only this login's tokens "
                                                            "[env EASEE_USERNAME].")
def logout_command(username: str | None) -> None:
    """Delete the access tokens cached by logins (all of them, or one username's)."""
    command = _Command(Environment.from_process())
    cache = TokenCache(warn=command.warn)
    try:
        removed = cache.remove(username)
    except EaseeTailError as problem:
        command.fail(problem.message, problem.exit_code)
    whose = f" of {username}" if username else ""
    command.info(f"removed {plural(removed, 'cached token')}{whose} from {cache.path}" if removed
                 else f"no cached tokens{whose} in {cache.path}")


@main.command("simulate", epilog=EXAMPLES["simulate"])
@debug_option
@quiet_option
@click.option("--amqp-url", envvar="EASEE_AMQP_URL", metavar="URL", required=True,
              help="amqps://user:pass@host:port/vhost of the broker to publish to "
                   "[env EASEE_AMQP_URL].")
@click.option("--queue", metavar="NAME", help="Deliver into this queue (through a private "
                                                 "topic exchange bound to it).")
@click.option("--exchange", metavar="NAME", help="Publish to this existing exchange instead.")
@click.option("--ca-file", envvar="EASEE_CA_FILE", metavar="PEM",
              type=click.Path(exists=True, dir_okay=False), help="Also trust this CA.")
@click.option("--chargers", "charger_count", type=click.IntRange(1, 100_000), default=10,
              show_default=True, help="Chargers in the fleet.")
@click.option("--rate", type=FiniteFloat(min=0, min_open=True, max=100_000), default=20.0,
              show_default=True, help="Messages per second.")
@click.option("--delay-ms", type=(FiniteFloat(min=0), FiniteFloat(min=0)),
              default=(40.0, 400.0), show_default=True, metavar="MIN MAX",
              help="Charger-to-cloud delay range: Timestamp is that much before ArrivalTime.")
@click.option("--seed", type=int, help="Seed for a repeatable fleet.")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Stop after N messages.")
@click.option("--duration", type=Duration(), help="Stop after DURATION (90 = 90s, 5m, 1h30m).")
@click.option("--time-scale", type=FiniteFloat(min=0, min_open=True, max=100_000), default=1.0,
              metavar="N", help="Simulated time N times the clock's pace (timestamps then run "
                                "ahead of the clock: latencies mean nothing).  [default: 1]")
@click.option("--no-reconnect", is_flag=True,
              help="Exit (code 12) when the connection is lost instead of reconnecting.")
@click.option("--max-retries", type=click.IntRange(min=0), metavar="N",
              help="Give up (exit 12) after N reconnection attempts in a row [default: never].")
def simulate_command(
    amqp_url: str, queue: str | None, exchange: str | None, ca_file: str | None,
    charger_count: int, rate: float, delay_ms: tuple[float, float], seed: int | None,
    count: int | None, duration: float | None, time_scale: float, no_reconnect: bool,
    max_retries: int | None,
) -> None:
    """Publish a simulated fleet to a broker: sessions, telemetry, tokens, reboots."""
    if (queue is None) == (exchange is None):
        raise click.UsageError("give --queue or --exchange (one of them)")
    if delay_ms[0] > delay_ms[1]:
        raise click.BadParameter("MIN is above MAX", param_hint="--delay-ms")
    command = _Command(Environment.from_process())
    command.redact.add(_url_password(amqp_url))
    try:
        details = parse_amqp_url(amqp_url, queue or "")
    except ValueError as problem:
        raise click.BadParameter(str(problem), param_hint="--amqp-url") from None
    if no_reconnect and max_retries is not None:
        raise click.UsageError("--max-retries counts reconnection attempts; --no-reconnect "
                               "makes none (give one of them)")
    command.stop.install()
    fleet = Fleet(charger_count, seed=seed, delay_ms=delay_ms, time_scale=time_scale)
    try:
        sent = simulate.publish(
            lambda: connect(details, ca_file, name="easee-tail simulate"), fleet,
            simulate.Target(queue, exchange), rate, count, duration,
            lambda sent: command.info(f"{sent:,} messages published"), command.warn,
            None if no_reconnect else Backoff(max_retries=max_retries))
    except EaseeTailError as problem:
        command.fail(problem.message, problem.exit_code)
    command.info(f"{plural(sent, 'message')} from {plural(charger_count, 'charger')} published to "
                 f"{details.display_url} ({'queue ' + queue if queue else 'exchange ' + str(exchange)})")


@main.command("completion", epilog=EXAMPLES["completion"])
@debug_option
@click.argument("shell", type=click.Choice(completion.SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, /, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    easee-tail completion bash > ~/.local/share/bash-completion/completions/easee-tail
    easee-tail completion zsh > "${fpath[1]}/_easee-tail"    # then start a new zsh
    easee-tail completion fish > ~/.config/fish/completions/easee-tail.fish
    """
    click.echo(completion.script(ctx.find_root().command, shell), nl=False)


@main.command("observations", epilog=EXAMPLES["observations"])
@debug_option
@click.argument("wanted", metavar="[ID|NAME]...", nargs=-1,
                shell_complete=complete_observations)
@click.option("--json", "as_json", is_flag=True, help="JSON: an array, or one object each.")
@click.option("--all", "everything", is_flag=True,
              help="Also Easee's wider list: ids the AMQP document does not list (tag unlisted).")
def observations_command(wanted: tuple[str, ...], as_json: bool, everything: bool) -> None:
    """List the observation catalogue, or show observations in full with their values."""
    env = Environment.from_process()
    table = catalogue.load()
    if wanted:
        ctx = click.get_current_context()
        argument = next(param for param in ctx.command.params if param.name == "wanted")
        ids = resolve_observations(ctx, argument, wanted)
        entries = [entry for number in ids if (entry := table.get(number)) is not None]
    else:
        entries = [entry for entry in table if everything or entry.listed]
    out = Console(file=env.stdout, no_color=env.no_color, highlight=False, soft_wrap=False)
    if as_json:
        document = [describe.as_json(entry) for entry in entries]
        env.stdout.write(json.dumps(document if not wanted or len(entries) > 1 else document[0],
                                    ensure_ascii=False, indent=2) + "\n")
    elif wanted:
        with out.capture() as captured:  # piped text gets no padding at line ends
            for number, entry in enumerate(entries):
                if number:
                    out.print()
                out.print(describe.detail(entry))
        text = captured.get()
        env.stdout.write(text if env.stdout_isatty
                         else "".join(line.rstrip() + "\n" for line in text.splitlines()))
    elif env.stdout_isatty:
        out.print(describe.table(entries))
    else:
        env.stdout.write("".join(describe.as_line(entry) + "\n" for entry in entries))


@dataclass
class _Command:
    env: Environment

    def __post_init__(self) -> None:
        self.redact = SECRETS
        self.stop = StopRequest()
        self.table: TableSink | None = None
        self._prompted: str | None = None  # a password asked for, for a re-login mid-run
        ctx = click.get_current_context(silent=True)
        self.quiet = bool(ctx and ctx.find_root().meta.get(QUIET))
        self.stderr = Console(file=self.env.stderr, no_color=self.env.no_color,
                              highlight=False, soft_wrap=True, markup=False)

    def tail(
        self, token: str | None, username: str | None, password: str | None, api_url: str,
        amqp_url: str | None, queue: str | None, ca_file: str | None, prefetch: int,
        allow_shared: bool, peek: bool, no_reconnect: bool, max_retries: int | None, heartbeat: int,
        insecure: bool, stream_offset: str | int | None, **options: Any,
    ) -> None:
        details = self.details_getter(token, username, password, api_url, amqp_url, queue,
                                      ca_file, insecure)

        def open_broker(refresh: bool, quiet: bool) -> tuple[BrokerSource, int]:
            details_now = details(refresh)
            if not details_now.use_ssl and not quiet:
                self.warn(f"the connection details ask for a plain (unencrypted) connection to "
                          f"{details_now.server}: the stream is readable on the network")
            source = BrokerSource(details_now, ca_file=ca_file, prefetch=prefetch,
                                  insecure=insecure, heartbeat=heartbeat, peek=peek,
                                  stream_offset=stream_offset)
            try:
                state = source.open(allow_shared=allow_shared)
            except BaseException:
                source.close()
                raise
            if peek and not quiet:
                self.warn("--peek: every message shown goes back to the queue, but the other "
                          "consumers get it later and marked redelivered, and easee-tail sees "
                          "only the messages the broker offers it (see README)")
            elif state.consumers and not quiet:
                self.warn(f"{plural(state.consumers, 'other consumer')} share {details_now.queue}: "
                          "messages shown here do not reach them")
            if state.messages and not quiet:
                self.info(f"{plural(state.messages, 'message')} "
                          f"{'is' if state.messages == 1 else 'are'} waiting in {details_now.queue}")
            return source, state.messages

        def open_source() -> tuple[Source, int]:
            first, backlog = open_broker(refresh=False, quiet=False)
            if no_reconnect:
                return first, backlog

            def reopen(refresh: bool) -> Source:
                with self.stop.interruptible():  # nothing is in hand while connecting
                    return open_broker(refresh, quiet=True)[0]

            return ReconnectingSource(
                first, reopen,
                Backoff(max_retries=max_retries), self.notice, can_refresh=amqp_url is None,
            ), backlog

        self.consume(open_source, removes=not peek, **options)

    def check_password_source(self, ctx: click.Context, options: dict[str, Any]) -> None:
        if options["token"] and ctx.get_parameter_source("username") is \
                click.core.ParameterSource.DEFAULT_MAP:
            options["username"] = None  # a token (flag or environment) beats a profile's login
        source = ctx.get_parameter_source("password")
        if source is click.core.ParameterSource.ENVIRONMENT and not options["username"]:
            options["password"] = None  # EASEE_PASSWORD is for logins; a --token run ignores it
        if source is click.core.ParameterSource.COMMANDLINE:
            self.warn("--password on the command line is visible to other users of this "
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
        self.redact.add(token, password, _url_password(amqp_url) if amqp_url else None)
        if insecure:
            self.warn("--insecure: TLS certificates are NOT verified, for the API nor the broker; "
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
        api = self.api(api_url, ca_file, insecure)
        login = None
        if username:
            login = Login(username, partial(self._password, username, password))
        return StreamCredentials(api, token=token, login=login, on_secret=self.redact.add,
                                 cache=TokenCache(warn=self.warn))

    def api(self, api_url: str, ca_file: str | None, insecure: bool) -> EaseeApi:
        """The Easee API at --api-url, which must be http(s); plain http off this machine is
        warned about (the token and password would travel unencrypted)."""
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise click.BadParameter(f"{api_url!r} is not an http(s):// URL with a host",
                                     param_hint="--api-url")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            self.warn(f"--api-url {mask_url(api_url)} is plain http: the token and the login "
                      "password travel unencrypted, readable on the network")
        return EaseeApi(api_url, ca_file=ca_file, insecure=insecure, wait=self._wait_for_api)

    def _wait_for_api(self, seconds: float, why: str) -> None:
        """Wait as the API asked (a short 429), with a countdown on a terminal."""
        end = time.monotonic() + seconds
        if not self.env.stderr_isatty or self.table is not None:
            self.notice(f"{why}; waiting")
            time.sleep(seconds)
            return
        while (left := end - time.monotonic()) > 0:
            self.env.stderr.write(f"\reasee-tail: {why}; waiting: {left:.0f} s \x1b[K")
            self.env.stderr.flush()
            time.sleep(min(1.0, left))
        self.env.stderr.write("\r\x1b[K")
        self.env.stderr.flush()

    def _password(self, username: str, given: str | None) -> str:
        """The login password: given, or asked for on the terminal before the table is up.

        Asked only when a login is due: a token cached by an earlier run needs none.
        """
        if given:
            return given
        if self._prompted is not None:  # asked once this run: kept in memory, never on disk
            return self._prompted
        if not self.env.stdin_isatty or self.table is not None:
            raise MissingPassword(
                f"logging in as {username!r} needs a password (no usable cached token): pass "
                "EASEE_PASSWORD, or run on a terminal to be asked for it")
        password: str = click.prompt(f"Easee password for {username}", hide_input=True,
                                     err=True)
        self.redact.add(password)
        self._prompted = password
        return password

    def consume(
        self, open_source: Callable[[], tuple[Source, int | None]], jsonl: bool,
        line_format: Template | str | None,
        save_path: str | None, fsync: bool, stats_interval: float | None, view: str,
        time_column: str, silent_after: float,
        chargers: Sequence[str], observations: tuple[tuple[int, ...], tuple[int, ...]],
        tags: Sequence[str], where: Sequence[Condition], since: datetime | None,
        until: datetime | None, time_field: str,
        count: int | None, duration: float | None, idle_timeout: float | None,
        exit_at_end: bool,
        decoder: Callable[[Delivery], Record] | None = None, live: bool = True,
        removes: bool = False,
    ) -> None:
        """Run the pipeline; `removes`: what it acknowledges leaves a real queue."""
        env = self.env
        if fsync and not save_path:
            raise click.UsageError("--fsync goes with --save")
        self.stop.install()
        if until is not None and live:  # a live stream also ends when the clock gets there
            left = (until - datetime.now(UTC)).total_seconds()
            if left <= 0:
                raise click.BadParameter("is in the past: a live stream would end at once",
                                         param_hint="--until")
            duration = left if duration is None else min(duration, left)
        wanted, unwanted = split_negated(chargers)
        wanted_tags, unwanted_tags = split_negated(tags)
        spec = FilterSpec(
            tuple(wanted), tuple(unwanted), observations[0], observations[1],
            tuple(wanted_tags), tuple(unwanted_tags), tuple(where), since, until,
            TIME_FIELDS[time_field])
        keep = build_filter((), (), spec)
        table = catalogue.load()
        for serial in [*wanted, *unwanted]:
            if not could_be_serial(serial):
                self.warn(f"--charger {serial!r} cannot be an Easee serial (two letters, then "
                          "six letters or digits, like EH123456): it matches no charger")
        tally = Tally(spec.describe(table.get), removes) if keep is not None else None
        sinks: list[Sink] = []
        source: Source | None = None
        stats: Stats | None = None
        failure: EaseeTailError | None = None
        ending = Ending.SOURCE_ENDED
        cut_short = False  # a signal that could not wait for the batch (a blocked write)
        started = time.monotonic()
        encoder = LineEncoder()
        keys: Keys | None = None
        try:
            if save_path:
                sinks.append(JsonlSink.open_file(save_path, encoder, fsync=fsync))
            source, backlog = open_source()
            if tally is not None and removes:
                self.info(f"filters on ({tally.filters}): messages that do not match are "
                          "acknowledged, so they leave the queue unseen (--peek leaves them)")
            jsonl = jsonl or line_format == "jsonl"
            template = line_format if isinstance(line_format, Template) else None
            show_table = not jsonl and template is None and env.stdout_isatty
            if show_table or env.stderr_isatty or stats_interval:
                stats = Stats(tally)
                sinks.append(stats)
            if tally is not None and not show_table:
                sinks.append(FilterNotice(tally, self.info))
            if stats_interval and not show_table:
                assert stats is not None
                sinks.append(StatsLines(stats, env.stderr, stats_interval))
            if show_table:
                assert stats is not None
                keys = Keys.open(env.stdin) if env.stdin_isatty else None
                state = None
                if view == "state" or keys is not None:  # else it could never be shown
                    fleet = FleetState(table)
                    sinks.append(fleet)
                    state = StateOptions(fleet, groups(table), silent_after)
                live_story = None
                if view == "timeline" or keys is not None:
                    live_story = LiveStory(story_data(table))
                    sinks.append(live_story)
                console = Console(file=env.stdout, no_color=env.no_color)
                self.table = TableSink(console, stats, source, state, view=view,
                                       keys=keys.read if keys else None, backlog=backlog,
                                       story=live_story, time_field=TIME_FIELDS[time_column])
                sinks.append(self.table)
            else:
                env.stdout_bytes.flush()  # the sink writes to the descriptor itself
                sinks.append(JsonlSink(env.stdout_bytes, "stdout", is_stdout=True,
                                       encoder=template or encoder, give_up=self.stop.overdue))
            started = time.monotonic()
            ending = run(source, decoder or partial(decode, catalogue=table), keep, sinks,
                         Limits(count, duration, idle_timeout,
                                backlog if exit_at_end else None), self.stop, tally)
        except Interrupted as interrupted:
            ending, self.stop.signum = Ending.SIGNAL, interrupted.signum
            cut_short = True
        except EaseeTailError as problem:
            failure = problem
        finally:
            # The terminal first (the table's cursor and screen, then the keys' modes), with
            # signals only noted meanwhile: a second Ctrl-C must not leave it without echo.
            self.stop.deferring = True
            try:
                self._close_sinks(sinks)  # the table stops before any error line
            finally:
                if keys is not None:
                    keys.close()
                self.stop.deferring = False
                if source is not None:
                    source.close()
        if failure is not None:
            self.fail(failure.message, failure.exit_code)
        if ending is Ending.PIPE_CLOSED or self.stop.signum == signal.SIGPIPE or cut_short:
            _silence_stdout()  # what a blocked write left in Python's buffer was never acked
        if stats is not None and env.stderr_isatty:
            with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
                self.stderr.print(summary(stats, time.monotonic() - started,
                                          self.stderr.size.width), style="dim")
        if ending is Ending.SIGNAL and self.stop.signum is not None:
            sys.exit(SIGNAL_EXIT.get(self.stop.signum, ExitCode.INTERRUPTED))

    def _close_sinks(self, sinks: list[Sink]) -> None:
        self.table = None
        while sinks:
            with contextlib.suppress(OSError, EaseeTailError):
                sinks.pop().close()

    def notice(self, message: str) -> None:
        """News from a running pipeline (reconnecting, reconnected): above the table when
        there is one, else a line on stderr."""
        if self.table is not None:
            self.table.notice(f"easee-tail: {visible(self.redact(message))}")
        else:
            self.info(message)

    def info(self, message: str) -> None:
        if self.quiet:
            return
        self.stderr.print(f"easee-tail: {visible(self.redact(message))}", style="dim")

    def warn(self, message: str) -> None:
        self.stderr.print(f"easee-tail: warning: {visible(self.redact(message))}",
                          style="yellow")

    def fail(self, message: str, code: ExitCode) -> NoReturn:
        self.stderr.print(f"easee-tail: error: {visible(self.redact(message))}", style="red")
        sys.exit(code)


def _loopback(host: str) -> bool:
    """localhost and loopback addresses: plain http there never leaves the machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _silence_stdout() -> None:
    """After `| head` closed the pipe, keep Python's exit-time flush from complaining."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def entry() -> None:
    # pika logs connection trouble itself; we report it once, our way, without its details.
    pika_log = logging.getLogger("pika")
    pika_log.addHandler(logging.NullHandler())
    pika_log.propagate = False
    SECRETS.add(*(os.environ.get(name) for name in ("EASEE_TOKEN", "EASEE_PASSWORD")))
    SECRETS.add(_url_password(os.environ.get("EASEE_AMQP_URL") or ""))
    try:
        main(standalone_mode=True)
    except Interrupted as interrupted:
        sys.exit(SIGNAL_EXIT.get(interrupted.signum, ExitCode.INTERRUPTED))
    except SystemExit:
        raise
    except BaseException:  # a bug: one line, no secrets; the traceback only on request
        if os.environ.get("EASEE_TAIL_DEBUG") or "--debug" in sys.argv:
            print(SECRETS(traceback.format_exc()), file=sys.stderr, end="")
        kind, _value = sys.exc_info()[:2]
        print(f"easee-tail: internal error: {kind.__name__ if kind else '?'}; "
              "run with --debug (or EASEE_TAIL_DEBUG=1) for details", file=sys.stderr)
        sys.exit(ExitCode.ERROR)
