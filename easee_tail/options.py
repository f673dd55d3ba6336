"""The option sets the commands share, and their callbacks: credentials, output, profile.

Declarations only, plus the little each option needs at parse time (resolving --obs names,
applying a profile, turning on --debug logging); cli.py puts them on its commands.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from click.shell_completion import CompletionItem

from easee_tail import catalogue, profiles
from easee_tail.defaults import DEFAULT_API_URL, DEFAULT_PREFETCH, HEARTBEAT, STALE_AFTER
from easee_tail.errors import SECRETS
from easee_tail.filters import Condition, split_negated, split_values
from easee_tail.model import RECORD_FIELDS
from easee_tail.params import Duration, FiniteFloat, ListenAddress, Moment, Rotate
from easee_tail.sinks import VIEWS
from easee_tail.sinks.template import PRESETS, Template, TemplateError
from easee_tail.text import visible


def complete_observations(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    prefix = incomplete.rsplit(",", 1)
    head = prefix[0] + "," if len(prefix) == 2 else ""
    last = prefix[-1].lower()
    return [
        CompletionItem(head + entry.name, help=f"{entry.id} {entry.description}"[:60])
        for entry in catalogue.load()
        if entry.name.lower().startswith(last) or str(entry.id).startswith(last)
    ]


def resolve_observations(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> list[int]:
    if any(not value.strip(" ,") for value in values):
        raise click.BadParameter("needs an id or a name", ctx=ctx, param=param)
    table = catalogue.load()
    ids = []
    for text in split_values(values):
        try:
            ids.append(table.resolve(text))
        except catalogue.UnknownObservation as unknown:
            hint = (f"; did you mean {', '.join(unknown.suggestions)}?" if unknown.suggestions
                    else "; `easee-tail observations` lists them")
            what = ("no observation has id" if unknown.number
                    else "no observation is named")
            raise click.BadParameter(f"{what} {visible(text)!r} in Easee's lists{hint}"
                                     if unknown.number else f"{what} {text!r}{hint}",
                                     ctx=ctx, param=param) from None
    return ids


def _template(ctx: click.Context, param: click.Parameter, text: str | None
              ) -> Template | str | None:
    if text is None or text == "jsonl":
        return text
    try:
        return Template(text)
    except TemplateError as problem:
        raise click.BadParameter(str(problem), ctx=ctx, param=param) from None


def resolve_obs_filter(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """--obs: (wanted ids, excluded ids); `!NAME` excludes."""
    if any(not value.strip(" ,") for value in values):
        raise click.BadParameter("needs an id or a name", ctx=ctx, param=param)
    wanted, excluded = split_negated(values)
    return (tuple(resolve_observations(ctx, param, wanted)),
            tuple(resolve_observations(ctx, param, excluded)))


def _tags(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> list[str]:
    known = sorted({tag for kind in catalogue.load().kinds() for entry in kind
                    for tag in entry.tags})
    for value in split_values(values):
        if value.lstrip("!") not in known:
            raise click.BadParameter(f"no tag {value.lstrip('!')!r}; tags: {', '.join(known)}",
                                     ctx=ctx, param=param)
    return list(values)


def _conditions(ctx: click.Context, param: click.Parameter, values: Sequence[str]
                ) -> list[Condition]:
    try:
        return [Condition.parse(value, RECORD_FIELDS) for value in values]
    except ValueError as problem:
        raise click.BadParameter(str(problem), ctx=ctx, param=param) from None


def _no_color(_ctx: click.Context, _param: click.Parameter, on: bool) -> None:
    if on:  # read by Environment.from_process, like a NO_COLOR the user set
        os.environ["NO_COLOR"] = "1"


def _color(_ctx: click.Context, _param: click.Parameter, when: str | None) -> None:
    """--color never|always beats NO_COLOR and the terminal test; auto leaves them be."""
    if when == "never":
        os.environ["NO_COLOR"] = "1"
    elif when == "always":  # read by rich, as a FORCE_COLOR the user set
        os.environ.pop("NO_COLOR", None)
        os.environ["FORCE_COLOR"] = "1"


QUIET = "easee_tail.quiet"  # ctx.meta key: informational stderr lines are left out


def _quiet(ctx: click.Context, _param: click.Parameter, on: bool) -> None:
    if on:
        ctx.meta[QUIET] = True


def quiet_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_quiet,
                        help="Leave out informational lines on stderr (never warnings or "
                             "errors).")(function)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # pika and urllib3 log what the broker and the API said: controls made visible
        return "\n".join(visible(line) for line in SECRETS(super().format(record)).split("\n"))


def _debug_logging(_ctx: click.Context, _param: click.Parameter, on: bool) -> None:
    if not on:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("easee-tail: debug: %(name)s: %(message)s"))
    for name in ("pika", "urllib3"):
        log = logging.getLogger(name)
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)


def _apply_profile(ctx: click.Context, param: click.Parameter, name: str | None) -> str | None:
    """Turn the chosen profile into defaults for this command's options: the command line
    and environment variables still win (click's own order), the built-in defaults lose."""
    try:
        profile = profiles.choose(name)
    except profiles.ProfileError as problem:
        raise click.BadParameter(problem.message, ctx=ctx, param=param) from None
    if profile is None:
        return None
    unknown = sorted(set(profile.values) - set(profile_keys(ctx.find_root().command)))
    if unknown:
        raise click.BadParameter(
            f"profile {profile.name!r} has unknown key(s) {', '.join(unknown)}: a key is the "
            "long name of an option (without --), and not a secret "
            f"({', '.join(profiles.SECRETS)})", ctx=ctx, param=param)
    defaults = dict(ctx.default_map or {})
    for key, value in profile.values.items():
        option = next((p for p in ctx.command.params
                       if isinstance(p, click.Option) and f"--{key}" in p.opts), None)
        if option is None or option.name is None:
            continue  # a key for other commands (a view for `doctor`, say)
        if option.multiple and isinstance(value, str):
            value = [value]
        if key == "ca-file" and isinstance(value, str):
            value = os.path.expanduser(value)
        defaults[option.name] = value
    ctx.default_map = defaults
    return profile.name


def profile_keys(root: click.Command) -> list[str]:
    """Every long option name any command takes, secrets and --profile itself aside."""
    commands = root.commands.values() if isinstance(root, click.Group) else [root]
    names = {opt[2:] for command in commands for param in command.params
             if isinstance(param, click.Option) for opt in param.opts if opt.startswith("--")}
    return sorted(names - {"profile", "help", *profiles.SECRETS})


def _complete_profiles(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    try:
        _default, found = profiles.read()
    except profiles.ProfileError:
        return []
    return [CompletionItem(name) for name in sorted(found) if name.startswith(incomplete)]


def profile_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--profile", envvar="EASEE_PROFILE", metavar="NAME", is_eager=True,
        expose_value=False, callback=_apply_profile, shell_complete=_complete_profiles,
        help="Defaults from this profile of config.toml (see `easee-tail profiles`) "
             "[env EASEE_PROFILE].")(function)


def debug_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--debug, on every command (an internal error says to run with it)."""
    return click.option(
        "--debug", is_flag=True, envvar="EASEE_TAIL_DEBUG", is_eager=True, expose_value=False,
        callback=_debug_logging,
        help="Log connection details (pika, HTTP) to stderr, secrets masked; show tracebacks "
             "of internal errors [env EASEE_TAIL_DEBUG].")(function)


# Shared by the pipelines and by timeline and sessions.
_CHARGER_OPTION = click.option(
    "-s", "--charger", "chargers", metavar="SERIAL", multiple=True,
    help="Only these chargers: serials or globs ('EH*'), case-insensitive (repeatable, "
         "comma-separated); '!SERIAL' leaves one out.")
_OBS_OPTION = click.option(
    "-o", "--obs", "observations", metavar="ID|NAME", multiple=True,
    callback=resolve_obs_filter, shell_complete=complete_observations,
    help="Only these observations, by id or name, case-insensitive (repeatable, "
         "comma-separated); '!NAME' leaves one out.")
_SINCE_OPTION = click.option(
    "--since", type=Moment(),
    help="Only records from TIME on: ISO 8601, a clock time today (14:02) or a duration ago "
         "(2h); by the charger's own clock unless --time-field says another.")
_UNTIL_OPTION = click.option(
    "--until", type=Moment(),
    help="Only records up to TIME (live: and exit 0 when the clock gets there).")
_TIME_FIELD_OPTION = click.option(
    "--time-field", type=click.Choice(["device", "arrival", "received"]), default="device",
    show_default=True,
    help="The time --since and --until judge: the charger's own (device), when it reached "
         "the cloud (arrival), or when easee-tail got it.")


def output_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options every pipeline shares, broker or demo."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("-j", "--jsonl", is_flag=True,
                     help="Write JSON lines to stdout (the default when stdout is not a terminal)."),
        click.option("-f", "--format", "line_format", metavar="TEMPLATE", callback=_template,
                     help="Plain lines instead of the table or JSON: a template over the JSON "
                          "lines' fields ('{time} {charger} {name} {shown}') or a preset: "
                          + ", ".join(PRESETS) + "; jsonl is --jsonl."),
        click.option("-w", "--save", "save_path", metavar="FILE", type=click.Path(dir_okay=False),
                     help="Also append JSON lines to FILE (created 0600); FILE.gz or FILE.zst "
                          "compresses (a new file)."),
        click.option("--rotate", type=Rotate(),
                     help="With --save: a new file once the current one is SIZE (100MB) or "
                          "DURATION (1h) old, each named with the time of its first line."),
        click.option("--fsync", is_flag=True,
                     help="fsync the --save file before each acknowledgement (durable, slower)."),
        _CHARGER_OPTION,
        _OBS_OPTION,
        click.option("--tag", "tags", metavar="TAG", multiple=True, callback=_tags,
                     help="Only observations with this catalogue tag (telemetry, event, boot, "
                          "json, debug, poll, unlisted, equalizer); '!TAG' leaves them out."),
        click.option("--where", metavar="'FIELD OP VALUE'", multiple=True,
                     callback=_conditions,
                     help="Only records where the condition holds: 'value != 0', "
                          "'latency_ms > 1000', 'label ~ error' (== != < <= > >= ~; "
                          "repeatable, all must hold)."),
        _SINCE_OPTION,
        _UNTIL_OPTION,
        _TIME_FIELD_OPTION,
        click.option("-c", "--count", type=click.IntRange(min=1), metavar="N",
                     help="Exit 0 after N records passed the filters."),
        click.option("--duration", type=Duration(),
                     help="Exit 0 after DURATION (90 = 90s, 5m, 1h30m)."),
        click.option("--idle-timeout", type=Duration(),
                     help="Exit 0 when no message has come for DURATION."),
        click.option("-e", "--exit-at-end", is_flag=True,
                     help="Exit 0 once the messages waiting at start have been shown (as kcat "
                          "-e); with filters, once they have been consumed."),
        click.option("--view", type=click.Choice(VIEWS), default="stream", show_default=True,
                     help="The table's view: records as they come, the latest state per "
                          "charger, or each charger's changes of state (timeline). Press v to "
                          "switch while running."),
        click.option("--time-column", type=click.Choice(["device", "arrival", "received"]),
                     default="received", show_default=True,
                     help="The table's time column: the charger's own time (device), when the "
                          "message reached the cloud (arrival), or when easee-tail got it."),
        click.option("--silent-after", type=Duration(), default=300.0, show_default=True,
                     help="State view: mark chargers not heard from for DURATION."),
        click.option("--stats-interval", type=Duration(minimum=0.099),
                     help="With JSON lines: a one-line stats record on stderr every DURATION "
                          "(0.1 s at least)."),
        click.option("--metrics", "metrics_address", type=ListenAddress(),
                     help="Serve Prometheus metrics on http://HOST:PORT/metrics while running "
                          "(PORT alone: on 127.0.0.1; 0: any free port)."),
        click.option("--metrics-per-charger", is_flag=True,
                     help="With --metrics: also count messages per charger (a label per "
                          "serial)."),
        click.option("--alert-latency", type=Duration(),
                     help="Warn on stderr when the p99 latency of the last minute goes above "
                          "DURATION (500ms, 2s), and again when it is back."),
        click.option("--alert-silence", type=Duration(),
                     help="Warn on stderr when no message has come for DURATION, and again "
                          "when messages come back."),
        click.option("--exit-on-alert", is_flag=True,
                     help="End with exit code 14 when an --alert-* bound is crossed (for "
                          "cron and health checks)."),
        click.option("--color", type=click.Choice(["auto", "always", "never"]), is_eager=True,
                     expose_value=False, callback=_color,
                     help="Colours: auto (on a terminal, unless NO_COLOR is set), always, "
                          "never."),
        click.option("--no-color", is_flag=True, is_eager=True, expose_value=False,
                     callback=_no_color, help="No colours (as --color never and NO_COLOR)."),
        click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_quiet,
                     help="Leave out informational lines on stderr (never warnings or "
                          "errors)."),
        debug_option,
    ]
    for option in reversed(options):
        function = option(function)
    return function


def credential_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Where the connection details come from: the API (token or login) or an AMQP URL."""
    options = [
        click.option("--token", envvar="EASEE_TOKEN", metavar="TOKEN",
                     help="Access token of an integration account [env EASEE_TOKEN]."),
        click.option("--username", envvar="EASEE_USERNAME",
                     help="Log in with this integration account [env EASEE_USERNAME]."),
        click.option("--password", envvar="EASEE_PASSWORD",
                     help="Password for --username; prompted for when omitted on a terminal "
                          "[env EASEE_PASSWORD]."),
        click.option("--api-url", envvar="EASEE_API_URL", default=DEFAULT_API_URL,
                     show_default=True, help="Easee API base URL [env EASEE_API_URL]."),
        click.option("--amqp-url", envvar="EASEE_AMQP_URL", metavar="URL",
                     help="amqps://user:pass@host:port/vhost: skip the API and connect "
                          "directly; needs --queue [env EASEE_AMQP_URL]."),
        click.option("--queue", envvar="EASEE_QUEUE", metavar="NAME",
                     help="Queue to consume with --amqp-url [env EASEE_QUEUE]."),
        click.option("--ca-file", envvar="EASEE_CA_FILE", metavar="PEM",
                     type=click.Path(exists=True, dir_okay=False),
                     help="Also trust this CA, for the broker and the API [env EASEE_CA_FILE]."),
        click.option("--insecure", is_flag=True,
                     help="Do not verify TLS certificates (API and broker). Dangerous; warns "
                          "each run."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


_GIVEN = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


def refuse_nonsense(ctx: click.Context, options: dict[str, Any]) -> None:
    """Combinations that cannot mean what the user thinks: one line, exit 2, rather than
    one of the two silently ignored. A profile's defaults never conflict by themselves."""

    def given(name: str) -> bool:
        return options.get(name) not in (None, False, (), []) and \
            ctx.get_parameter_source(name) in _GIVEN

    def typed(name: str) -> bool:
        return given(name) and \
            ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE

    if options.get("save_path") == "":
        raise click.BadParameter("needs a file name", ctx=ctx, param_hint="--save")
    if (given("jsonl") or options.get("line_format") == "jsonl") \
            and options.get("view") != "stream" and given("view"):
        raise click.UsageError(f"--view {options['view']} is a view of the table; --jsonl "
                               "writes JSON lines instead (give one of them)")
    if given("time_column") and (given("jsonl") or given("line_format")):
        raise click.UsageError("--time-column picks the table's time column; JSON lines and "
                               "--format lines carry every time (give one of them)")
    if isinstance(options.get("line_format"), Template) and (given("jsonl") or given("view")):
        raise click.UsageError("--format writes plain lines; --jsonl and --view are other "
                               "outputs (give one of them)")
    if given("metrics_per_charger") and not options.get("metrics_address"):
        raise click.UsageError("--metrics-per-charger adds labels to --metrics, which is not "
                               "on (give --metrics [HOST:]PORT)")
    if given("exit_on_alert") and not (options.get("alert_latency") is not None
                                       or options.get("alert_silence") is not None):
        raise click.UsageError("--exit-on-alert ends the run on an alert, and none is set "
                               "(give --alert-latency or --alert-silence)")
    if given("no_reconnect") and given("max_retries"):
        raise click.UsageError("--max-retries counts reconnection attempts; --no-reconnect "
                               "makes none (give one of them)")
    if given("peek") and given("allow_shared"):
        raise click.UsageError("--peek already reads beside other consumers without taking "
                               "from them; --allow-shared is for taking (give one of them)")
    # a token or login typed beside --amqp-url; one from the environment or a profile is
    # simply not used when the command line names a broker
    if options.get("amqp_url") and (typed("token") or typed("username")):
        raise click.UsageError("--amqp-url connects without the Easee API, so --token and "
                               "--username would not be used (give one way in)")


def capture_options(observations: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """timeline and sessions: which part of a capture, and JSON lines on a terminal too."""
    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
                   _CHARGER_OPTION, *([_OBS_OPTION, _TIME_FIELD_OPTION] if observations
                                      else []),
                   _SINCE_OPTION, _UNTIL_OPTION,
                   click.option("--json", "as_json", is_flag=True,
                                help="JSON lines, also on a terminal."),
                   click.option("--text", "as_text", is_flag=True,
                                help="The terminal's layout, also in a pipe or a file "
                                     "(no colour): for less or a report."),
                   debug_option]
        for option in reversed(options):
            function = option(function)
        return function
    return apply


def _stream_offset(_ctx: click.Context, _param: click.Parameter, value: str | None
                   ) -> str | int | None:
    if value is None or value in ("first", "last", "next"):
        return value
    if value.isdecimal():
        return int(value)
    raise click.BadParameter("give first, last, next or an offset (a whole number)")


STALE_AFTER_OPTION = click.option(
    "--stale-after", type=Duration(), default=STALE_AFTER, show_default=True,
    help="Mark a value stale when its Timestamp is over DURATION before its ArrivalTime (the "
         "cloud sends last values again, e.g. to a new subscriber).")
_NO_RECONNECT_OPTION = click.option(
    "--no-reconnect", is_flag=True,
    help="Exit (code 12) when the connection is lost instead of reconnecting.")
_MAX_RETRIES_OPTION = click.option(
    "--max-retries", type=click.IntRange(min=0), metavar="N",
    help="Give up (exit 12) after N reconnection attempts in a row [default: never].")


def broker_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """How the tail consumes: prefetch, sharing, peeking, stream offset, reconnection."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--prefetch", type=click.IntRange(1, 65535), default=DEFAULT_PREFETCH,
                     show_default=True,
                     help="Unacknowledged messages the broker may send ahead."),
        click.option("--allow-shared", is_flag=True,
                     help="Consume even when other consumers are attached (they lose the "
                          "messages easee-tail takes)."),
        click.option("--peek", is_flag=True,
                     help="Look without taking: every message goes back to the queue after it "
                          "is shown (prefetch 1). Costs other consumers delay; see README."),
        click.option("--stream-offset", metavar="first|last|next|N", callback=_stream_offset,
                     help="For a stream queue: where to start reading (a consumer without it "
                          "starts at the next new message, so what was waiting is not shown)."),
        _NO_RECONNECT_OPTION, _MAX_RETRIES_OPTION,
        click.option("--heartbeat", type=click.IntRange(1, 600), default=HEARTBEAT,
                     show_default=True, metavar="SECONDS",
                     help="AMQP heartbeat: a silent connection counts as lost after about this "
                          "long plus a few seconds."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def simulate_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Where `simulate` publishes, and what."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--amqp-url", envvar="EASEE_AMQP_URL", metavar="URL", required=True,
                     help="amqps://user:pass@host:port/vhost of the broker to publish to "
                          "[env EASEE_AMQP_URL]."),
        click.option("--queue", metavar="NAME",
                     help="Deliver into this queue (through a private topic exchange bound "
                          "to it)."),
        click.option("--exchange", metavar="NAME",
                     help="Publish to this existing exchange instead."),
        click.option("--ca-file", envvar="EASEE_CA_FILE", metavar="PEM",
                     type=click.Path(exists=True, dir_okay=False), help="Also trust this CA."),
        click.option("--chargers", "charger_count", type=click.IntRange(1, 100_000),
                     default=10, show_default=True, help="Chargers in the fleet."),
        click.option("--rate", type=FiniteFloat(min=0, min_open=True, max=100_000),
                     default=20.0, show_default=True, help="Messages per second."),
        click.option("--delay-ms", type=(FiniteFloat(min=0), FiniteFloat(min=0)),
                     default=(40.0, 400.0), show_default=True, metavar="MIN MAX",
                     help="Charger-to-cloud delay range: Timestamp is that much before "
                          "ArrivalTime."),
        click.option("--seed", type=int, help="Seed for a repeatable fleet."),
        click.option("--count", type=click.IntRange(min=1), metavar="N",
                     help="Stop after N messages."),
        click.option("--duration", type=Duration(),
                     help="Stop after DURATION (90 = 90s, 5m, 1h30m)."),
        click.option("--time-scale", type=FiniteFloat(min=0, min_open=True, max=100_000),
                     default=1.0, metavar="N",
                     help="Simulated time N times the clock's pace (timestamps then run ahead "
                          "of the clock: latencies mean nothing).  [default: 1]"),
        _NO_RECONNECT_OPTION, _MAX_RETRIES_OPTION,
    ]
    for option in reversed(options):
        function = option(function)
    return function
