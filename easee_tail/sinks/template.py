"""Plain lines from a template over the JSON lines' field names, for grep and awk:
`--format '{time} {charger} {name} {shown}'`, or a named preset.

Each field is shown as text with control characters made visible, so that one record is
one line whatever it carries; a field a record does not have (`error` on an observation)
or a null is `-`.
"""

from __future__ import annotations

import string

from easee_tail.format import compact_json, display_time, display_value
from easee_tail.model import RECORD_FIELDS, Record
from easee_tail.text import visible

PRESETS = {
    "short": "{time} {charger} {id} {name} {shown}",
    "values": "{charger} {name} {value} {unit}",
    "keys": "{received} {routing_key} {value}",
}
# besides the JSON lines' fields: the received time as the table shows it, and the value
# as the table shows it (with its unit or label)
DERIVED = ("time", "shown")
FIELDS = (*RECORD_FIELDS, *DERIVED)


class TemplateError(ValueError):
    pass


class Template:
    def __init__(self, text: str) -> None:
        text = PRESETS.get(text, text)
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as problem:
            raise TemplateError(f"not a template: {problem}") from None
        names = [name for _literal, name, _spec, _conversion in parsed if name is not None]
        if not names:
            raise TemplateError("names no field: use {field} (fields: " + ", ".join(FIELDS)
                                + f"; presets: {', '.join(PRESETS)})")
        unknown = [name for name in names if name not in FIELDS]
        if unknown:
            raise TemplateError(f"no field named {unknown[0]!r}; fields: {', '.join(FIELDS)}")
        if any(spec or conversion for _literal, name, spec, conversion in parsed
               if name is not None):
            raise TemplateError("fields take no format spec or conversion: {name}, not "
                                "{name:>8} or {name!r}")
        self._parsed = [(literal, name) for literal, name, _spec, _conversion in parsed]

    def __call__(self, record: Record) -> bytes:
        """The record's line (one line, with its newline)."""
        parts: list[str] = []
        for literal, name in self._parsed:
            parts.append(literal)
            if name is not None:
                parts.append(_field(record, name))
        return ("".join(parts) + "\n").encode("utf-8", "backslashreplace")


def _field(record: Record, name: str) -> str:
    if name == "time":
        return display_time(record.received)
    if name == "shown":
        return display_value(record)
    value = getattr(record, name, None)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return visible(value.replace("\n", " "))
    if isinstance(value, int | float):
        return repr(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat()).replace("+00:00", "Z")
    return visible(compact_json(list(value) if isinstance(value, tuple) else value))
