"""Text from outside shown safely: every character that could steer a terminal made visible.

Routing keys, values, API messages and broker errors come from parties easee-tail does not
control. Shown raw, an escape sequence in one of them can retitle the window, clear the
screen or reorder the line (bidi overrides). `visible` is the one function every renderer
passes such text through; JSON lines need none of it (JSON escapes control characters).
"""

from __future__ import annotations

import re

# C0 controls and DEL, C1 controls, the bidi embeddings, overrides and isolates, the line
# and paragraph separators, and lone surrogates (not text at all).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e"
                     "\u2066-\u2069\ud800-\udfff]")


def visible(text: str) -> str:
    """`text` with each unsafe character as an escape: `\\x1b`, `\\u202e`, `\\ud800`."""
    if text.isprintable() and text.isascii():  # the usual case, without a regex
        return text
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"



def plural(count: int, word: str, words: str | None = None) -> str:
    """`1 charger`, `3 chargers`, `1,000 messages`: the count and its noun, agreeing."""
    return f"{count:,} {word if count == 1 else words or word + 's'}"
