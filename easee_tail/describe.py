"""`easee-tail observations`: the catalogue for people (a table, or one entry in full) and for
programs (JSON, or tab-separated lines when piped, one observation a line, for grep and cut)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from easee_tail.catalogue import ObservationType


def as_json(entry: ObservationType) -> dict[str, object]:
    return {
        "id": entry.id, "name": entry.name, "type": entry.type, "unit": entry.unit,
        "unit_inferred": entry.unit_inferred, "tags": list(entry.tags),
        "description": entry.description, "in_amqp_list": entry.listed,
        "roles": list(entry.roles),
        "labels": {str(code): label for code, label in sorted(entry.labels.items())},
        "flags": {str(bit): name for bit, name in sorted(entry.flags.items())},
    }


def as_line(entry: ObservationType) -> str:
    return "\t".join([str(entry.id), entry.name, entry.type, entry.unit or "",
                      ",".join(entry.tags), entry.description])


def table(entries: list[ObservationType]) -> Table:
    view = Table(show_edge=False, pad_edge=False, header_style="bold", expand=False)
    view.add_column("id", justify="right", no_wrap=True)
    view.add_column("name", no_wrap=True)
    view.add_column("type", no_wrap=True)
    view.add_column("unit", no_wrap=True)
    view.add_column("tags", style="dim", no_wrap=True)
    view.add_column("description", overflow="fold")
    for entry in entries:
        view.add_row(str(entry.id), entry.name, entry.type, entry.unit or "",
                     ",".join(entry.tags), entry.description)
    return view


def detail(entry: ObservationType) -> RenderableType:
    head = Text()
    head.append(f"{entry.id} {entry.name}", style="bold")
    head.append(f"  {entry.type or 'type not published'}")
    if entry.unit:
        head.append(f", {entry.unit}" + (" (inferred)" if entry.unit_inferred else ""))
    if entry.tags:
        head.append(f"  [{', '.join(entry.tags)}]", style="dim")
    about = entry.description or (
        "From Easee's full charger observation list, not the AMQP document's"
        + (f"; seen by {', '.join(entry.roles)}" if entry.roles else "") + ".")
    parts: list[RenderableType] = [head, Text(about)]
    for title, mapping in (("values", entry.labels), ("flag bits", entry.flags)):
        if mapping:
            listing = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
            listing.add_column(justify="right", style="cyan")
            listing.add_column()
            for code, label in sorted(mapping.items()):
                listing.add_row(str(code), label)
            parts += [Text(title + ":", style="bold"), listing]
    return Group(*parts)
