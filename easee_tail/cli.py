"""The command line: the commands and their options, a table of contents of the package.

Each command hands its parsed options to `commands`, imported only when a command runs, so
that --help, --version and shell completion never load pika, requests or rich.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any

import click
from click.shell_completion import CompletionItem

from easee_tail import completion
from easee_tail.errors import SECRETS, ExitCode, Interrupted, url_password
from easee_tail.help_text import EXAMPLES
from easee_tail.options import (
    STALE_AFTER_OPTION,
    broker_options,
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
    simulate_options,
)
from easee_tail.params import FiniteFloat

_PATHS = click.argument("paths", metavar="[FILE]...", nargs=-1,
                        type=click.Path(exists=True, dir_okay=True, allow_dash=True))


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
@click.version_option(package_name="easee-tail", prog_name="easee-tail")
def main() -> None:
    """Tail the Easee charger cloud's AMQP observation stream.

    \b
    easee-tail --token TOKEN             watch your chargers (live table, or JSONL when piped)
    easee-tail demo                      the same on a simulated fleet: no account needed
    easee-tail --obs ChargerOpMode | jq  filter and pipe
    """


@main.command("tail", epilog=EXAMPLES["tail"])
@profile_option
@credential_options
@broker_options
@output_options
@STALE_AFTER_OPTION
@click.pass_context
def tail_command(ctx: click.Context, /, **options: Any) -> None:
    """Consume the stream (the default command)."""
    from easee_tail import commands
    refuse_nonsense(ctx, options)
    commands.tail(ctx, options)


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
@STALE_AFTER_OPTION
@click.pass_context
def demo_command(ctx: click.Context, /, charger_count: int, rate: float, seed: int | None,
                 time_scale: float, **options: Any) -> None:
    """Run the same pipeline on a simulated fleet, in-process: no account, no broker."""
    from easee_tail import commands
    refuse_nonsense(ctx, options)
    commands.demo(ctx, charger_count, rate, seed, time_scale, options)


@main.command("replay", epilog=EXAMPLES["replay"])
@profile_option
@_PATHS
@click.option("--speed", type=FiniteFloat(min=0, min_open=True), metavar="N",
              help="N times the original pace (default: as fast as possible when piped, "
                   "the original pace on a terminal).")
@output_options
@click.pass_context
def replay_command(ctx: click.Context, /, paths: tuple[str, ...], speed: float | None,
                   **options: Any) -> None:
    """Run JSON lines from --save (files, or stdin) through the same filters and views."""
    from easee_tail import commands
    refuse_nonsense(ctx, options)
    commands.replay(paths, speed, options)


@main.command("timeline", epilog=EXAMPLES["timeline"])
@_PATHS
@capture_options(observations=True)
def timeline_command(paths: tuple[str, ...], chargers: tuple[str, ...],
                     observations: tuple[tuple[int, ...], tuple[int, ...]],
                     since: datetime | None, until: datetime | None, time_field: str,
                     as_json: bool, as_text: bool) -> None:
    """Each charger's story from captures: what changed, when, and how long it held."""
    from easee_tail.captures import questions
    questions.timeline_command(paths, chargers, observations, since, until, time_field,
                               as_json, as_text)


@main.command("sessions", epilog=EXAMPLES["sessions"])
@_PATHS
@capture_options(observations=False)
def sessions_command(paths: tuple[str, ...], chargers: tuple[str, ...],
                     since: datetime | None, until: datetime | None, as_json: bool,
                     as_text: bool) -> None:
    """Charging sessions from captures: start, stop, energy, peak power, and how each ended.

    --since and --until keep the sessions that ran at some moment between them, by the
    charger's clock."""
    from easee_tail.captures import questions
    questions.sessions_command(paths, chargers, since, until, as_json, as_text)


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
    from easee_tail import commands
    commands.connection(ctx, as_json, show_secrets, options)


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
    from easee_tail import commands
    commands.doctor_check(ctx, jsonl, strict, options)


@main.command("profiles", epilog=EXAMPLES["profiles"])
@debug_option
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def profiles_command(as_json: bool) -> None:
    """Show the config file's profiles (precedence: flags, then environment, then profile)."""
    from easee_tail import commands
    commands.show_profiles(as_json, set(profile_keys(main)))


@main.command("logout", epilog=EXAMPLES["logout"])
@debug_option
@click.option("--username", envvar="EASEE_USERNAME", help="Only this login's tokens "
                                                            "[env EASEE_USERNAME].")
def logout_command(username: str | None) -> None:
    """Delete the access tokens cached by logins (all of them, or one username's)."""
    from easee_tail import commands
    commands.logout(username)


@main.command("simulate", epilog=EXAMPLES["simulate"])
@debug_option
@quiet_option
@simulate_options
def simulate_command(**options: Any) -> None:
    """Publish a simulated fleet to a broker: sessions, telemetry, tokens, reboots."""
    from easee_tail import commands
    commands.publish(**options)


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
@click.argument("wanted", metavar="[ID|NAME]...", nargs=-1, callback=resolve_observations,
                shell_complete=complete_observations)
@click.option("--json", "as_json", is_flag=True, help="JSON: an array, or one object each.")
@click.option("--all", "everything", is_flag=True,
              help="Also Easee's wider list: ids the AMQP document does not list (tag unlisted).")
@click.option("--device", type=click.Choice(["charger", "equalizer"]), default="charger",
              show_default=True, help="Whose list: an Equalizer's numbers mean other things.")
def observations_command(wanted: list[int], as_json: bool, everything: bool,
                         device: str) -> None:
    """List the observation catalogue, or show observations in full with their values."""
    from easee_tail import describe  # not commands: a listing starts fast
    describe.observations(wanted, as_json, everything, device)


def entry() -> None:
    SECRETS.add(*(os.environ.get(name) for name in ("EASEE_TOKEN", "EASEE_PASSWORD")))
    SECRETS.add(url_password(os.environ.get("EASEE_AMQP_URL") or ""))
    try:
        main(standalone_mode=True)
    except Interrupted as interrupted:  # a signal while nothing was in hand
        from easee_tail.run import SIGNAL_EXIT
        sys.exit(SIGNAL_EXIT.get(interrupted.signum, ExitCode.INTERRUPTED))
    except SystemExit:
        raise
    except BaseException as problem:  # a bug: one line, no secrets; the traceback on request
        if os.environ.get("EASEE_TAIL_DEBUG") or "--debug" in sys.argv:
            import traceback
            print(SECRETS(traceback.format_exc()), file=sys.stderr, end="")
        print(f"easee-tail: internal error: {type(problem).__name__}; "
              "run with --debug (or EASEE_TAIL_DEBUG=1) for details", file=sys.stderr)
        sys.exit(ExitCode.ERROR)
