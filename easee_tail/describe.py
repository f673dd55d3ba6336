"""`easee-tail observations`: the catalogue for people (a table, or one entry in full) and for
programs (JSON, or tab-separated lines when piped, one observation a line, for grep and cut)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from easee_tail.catalogue import ObservationType, load
from easee_tail.environment import Environment

if TYPE_CHECKING:  # rich only for a terminal: piped, the listing starts fast
    from rich.console import RenderableType
    from rich.table import Table


def as_json_entry(entry: ObservationType) -> dict[str, object]:
    return {
        "id": entry.id, "name": entry.name, "type": entry.type, "unit": entry.unit,
        "unit_inferred": entry.unit_inferred, "tags": list(entry.tags),
        "description": entry.description, "in_amqp_list": entry.listed,
        "roles": list(entry.roles),
        "labels": {str(code): label for code, label in sorted(entry.labels.items(), key=_code)},
        "flags": {str(bit): name for bit, name in sorted(entry.flags.items())},
        **({"codes": {str(code): name for code, name in sorted(entry.codes.items())}}
           if entry.codes else {}),
        "device": entry.device,
        "sources": [{"says": f"{claim.what} {claim.value}".strip(), "by": list(claim.sources),
                     **({"remark": claim.remark} if claim.remark else {})}
                    for claim in entry.claims],
    }


def as_line(entry: ObservationType) -> str:
    return "\t".join([str(entry.id), entry.name, entry.type, entry.unit or "",
                      ",".join(entry.tags), entry.description])


def table(entries: list[ObservationType]) -> Table:
    from rich.table import Table
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
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text
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
    for title, mapping in (("values", entry.labels), ("flag bits", entry.flags),
                           ("read as one code", entry.codes)):
        if mapping:
            listing = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
            listing.add_column(justify="right", style="cyan")
            listing.add_column()
            for code, label in sorted(mapping.items(), key=_code):
                listing.add_row(str(code), label)
            parts += [Text(title + ":", style="bold"), listing]
    if entry.claims:
        parts.append(Text("sources:", style="bold"))
        parts += [Text(f"  {claim}") for claim in entry.claims]
    return Group(*parts)


def _code(item: tuple[int | str, str]) -> tuple[int, str]:
    """Numbers in order, then letters (a String observation's codes)."""
    code = item[0]
    return (code, "") if isinstance(code, int) else (1 << 30, code)


def observations(ids: list[int], as_json: bool, everything: bool,
                 device: str = "charger") -> None:
    """`easee-tail observations`: the catalogue (the AMQP list, or `everything`), or the
    entries `ids` names in full; `device`: whose list (an Equalizer's is all its own)."""
    table = next((kind for kind in load().kinds() if kind.device == device), load())
    everything = everything or table.device != "charger"
    if ids:
        entries = [entry for number in ids if (entry := table.get(number)) is not None]
    else:
        entries = [entry for entry in table if everything or entry.listed]
    show(Environment.from_process(), entries, as_json, detailed=bool(ids))


def show(env: Environment, entries: list[ObservationType], as_json: bool,
         detailed: bool) -> None:
    """JSON, entries in full, a table on a terminal, or a tab-separated line each when
    piped (for grep and cut)."""
    if as_json:
        document = [as_json_entry(entry) for entry in entries]
        env.stdout.write(json.dumps(document if not detailed or len(entries) > 1
                                    else document[0], ensure_ascii=False, indent=2) + "\n")
        return
    if not detailed and not env.stdout_isatty:
        env.stdout.write("".join(as_line(entry) + "\n" for entry in entries))
        return
    from rich.console import Console
    out = Console(file=env.stdout, no_color=env.no_color, highlight=False, soft_wrap=False)
    if not detailed:
        out.print(table(entries))
        return
    with out.capture() as captured:  # piped text gets no padding at line ends
        for number, entry in enumerate(entries):
            if number:
                out.print()
            out.print(detail(entry))
    text = captured.get()
    env.stdout.write(text if env.stdout_isatty
                     else "".join(line.rstrip() + "\n" for line in text.splitlines()))
