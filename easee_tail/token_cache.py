"""Access tokens from logins, kept between runs in the user's cache dir, readable by them only.

One JSON file, an entry per (API URL, username). Written whole to a new 0600 file and
renamed over the old one, so a reader never sees half a file. A file others can read is
not trusted (and not used): it would mean someone else could have replaced it or read it.
`easee-tail logout` deletes entries.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import platformdirs

from easee_tail.credentials import Tokens
from easee_tail.errors import OutputFailure


def default_path() -> Path:
    return Path(platformdirs.user_cache_dir("easee-tail")) / "tokens.json"


class TokenCache:
    def __init__(self, path: Path | None = None,
                 warn: Callable[[str], None] = lambda _message: None) -> None:
        self.path = path or default_path()
        self._warn = warn  # a cache that cannot be used is worth a warning, never a failure

    def load(self, api_url: str, username: str) -> Tokens | None:
        entry = self._read().get(_key(api_url, username))
        if not isinstance(entry, dict) or not isinstance(entry.get("access"), str):
            return None
        refresh, expires = entry.get("refresh"), entry.get("expires_at")
        return Tokens(entry["access"], refresh if isinstance(refresh, str) else None,
                            float(expires) if isinstance(expires, int | float) else None)

    def store(self, api_url: str, username: str, tokens: Tokens) -> None:
        entries = self._read()
        entries[_key(api_url, username)] = {
            "access": tokens.access, "refresh": tokens.refresh, "expires_at": tokens.expires_at,
        }
        try:
            self._write(entries)
        except OutputFailure as problem:
            self._warn(problem.message + "; the next run logs in again")

    def remove(self, username: str | None = None) -> int:
        """Forget the tokens of one username (any API), or all of them. How many went."""
        entries = self._read()
        gone = [key for key in entries if username is None or key.split("|", 1)[1] == username]
        for key in gone:
            del entries[key]
        if entries:
            self._write(entries)
        else:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as problem:
                raise OutputFailure(f"cannot delete the token cache {self.path}: "
                                    f"{problem.strerror or problem}") from None
        return len(gone)

    def _read(self) -> dict[str, object]:
        try:
            with open(self.path, encoding="utf-8") as file:
                mode = os.fstat(file.fileno()).st_mode
                if mode & (stat.S_IRWXG | stat.S_IRWXO):
                    self._warn(f"the token cache {self.path} is open to other users "
                               f"({stat.filemode(mode)}): not used; `easee-tail logout` "
                               "deletes it")
                    return {}
                entries = json.load(file)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as problem:
            self._warn(f"the token cache {self.path} is unreadable ({type(problem).__name__}): "
                       "not used")
            return {}
        return entries if isinstance(entries, dict) else {}

    def _write(self, entries: dict[str, object]) -> None:
        directory = self.path.parent
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(entries, file)
            os.replace(temporary, self.path)
        except OSError as problem:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise OutputFailure(f"cannot write the token cache {self.path}: "
                                f"{problem.strerror or problem}") from None


def _key(api_url: str, username: str) -> str:
    return f"{api_url.rstrip('/')}|{username}"
