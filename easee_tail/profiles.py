"""Named profiles from config.toml in the user's config dir: defaults for a set of options.

    default = "work"                 # the profile used when --profile is not given

    [profile.work]
    api-url = "https://api.easee.com"
    username = "partner@example.com"
    charger = ["EH123456"]
    view = "state"

A profile's keys are the long names of options (of any command: a key another command
takes is left alone by this one); what it sets counts below the command line and the
environment, above the built-in defaults. Keys are checked when a profile is used, so one
profile's mistake never breaks another. Secrets do not belong here: logins keep their
tokens in the token cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from easee_tail.environment import Environment
from easee_tail.errors import EaseeTailError, ExitCode
from easee_tail.text import visible

SECRETS = ("token", "password", "amqp-url")  # never in a file others may read


class ProfileError(EaseeTailError):
    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Profile:
    name: str
    values: Mapping[str, object]  # option long name (without --) -> value


def config_path() -> Path:
    import platformdirs  # at the first use: --help and completion do without
    return Path(platformdirs.user_config_dir("easee-tail")) / "config.toml"


def read(path: Path | None = None) -> tuple[str | None, dict[str, Profile]]:
    """The default profile's name and every profile, checked; (None, {}) without a file."""
    import tomllib
    path = path or config_path()
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        return None, {}
    except (OSError, tomllib.TOMLDecodeError) as problem:
        raise ProfileError(f"cannot read {path}: {problem}") from None
    default = document.get("default")
    tables = document.get("profile", {})
    if not isinstance(tables, dict) or (default is not None and not isinstance(default, str)):
        raise ProfileError(f"{path}: expected `default = \"NAME\"` and [profile.NAME] tables")
    profiles = {}
    for name, values in tables.items():
        if not isinstance(values, dict):
            raise ProfileError(f"{path}: profile.{name} is not a table")
        profiles[name] = Profile(name, values)
    if default is not None and default not in profiles:
        raise ProfileError(f"{path}: default = {default!r} names no [profile.{default}]")
    return default, profiles


def choose(name: str | None, path: Path | None = None) -> Profile | None:
    """The profile asked for by name, else the file's default one, else none."""
    path = path or config_path()
    default, profiles = read(path)
    if name is None:
        return profiles[default] if default is not None else None
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ProfileError(f"no profile {name!r} in {path} (profiles there: {known})")
    return profiles[name]


def show(env: Environment, known: set[str], as_json: bool) -> None:
    """`easee-tail profiles`: the file and its profiles, a key no command knows marked; a
    file that cannot be read is shown with why, not failed on (this is where to look)."""
    path = config_path()
    try:
        default, found = read(path)
    except ProfileError as problem:
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
