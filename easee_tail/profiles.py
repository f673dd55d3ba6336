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

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from easee_tail.errors import EaseeTailError, ExitCode

SECRETS = ("token", "password", "amqp-url")  # never in a file others may read


class ProfileError(EaseeTailError):
    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Profile:
    name: str
    values: Mapping[str, object]  # option long name (without --) -> value


def config_path() -> Path:
    return Path(platformdirs.user_config_dir("easee-tail")) / "config.toml"


def read(path: Path | None = None) -> tuple[str | None, dict[str, Profile]]:
    """The default profile's name and every profile, checked; (None, {}) without a file."""
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
