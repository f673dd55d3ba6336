"""The state view's lines: a block per charger with the latest value of each observation.

Pure drawing from a FleetState: the first line of a block names the charger, how many
messages it sent and when it was last heard from (or that it went silent); then a line per
group that has values (status, power, link, from data/state_view.json) and one for the
observations in no group. When a block is taller than the screen, its last lines give
way first: the status line keeps its place before "other". A value that changed a moment
ago is shown reversed; telemetry carries a sparkline of its recent values. Lines are
cropped to the width, never wrapped.
"""

from __future__ import annotations

from rich.text import Text

from easee_tail.format import display_ago, display_state_value, sparkline
from easee_tail.state import FleetState, Group, Latest
from easee_tail.text import plural, visible

HIGHLIGHT = 2.5  # seconds a changed value stays highlighted
_LABEL_WIDTH = 8  # "status", "power", "link", "other"


MORE_BELOW = "↓ "  # how the last line starts when chargers are left below the screen


def state_lines(
    fleet: FleetState, groups: tuple[Group, ...], width: int, height: int, now: float,
    silent_after: float, skip: int = 0,
) -> list[Text]:
    """The view's lines, at most `height`, starting `skip` chargers down the list."""
    chargers = fleet.by_serial()
    if not chargers:
        return [Text("no charger heard from yet", style="dim")]
    skip = min(skip, len(chargers) - 1)
    lines: list[Text] = []
    if skip:
        lines.append(Text(f"↑ {plural(skip, 'charger')} above", style="dim"))
    for shown, serial in enumerate(chargers[skip:], start=skip):
        block = _block(fleet, serial, groups, now, silent_after, width)
        left = len(chargers) - shown
        room = height - len(lines) - (1 if left > 1 else 0)
        if len(block) > room and shown == skip and room > 0:
            # the first charger on screen is always shown: its lines are in order of
            # importance (name, status, power, link, other), so the least important give way
            block = block[:room]
        elif len(block) > room:
            lines.append(Text(f"{MORE_BELOW}{plural(left, 'more charger')} below: j or ↓ to scroll, or pick "
                              "with --charger SERIAL", style="dim"))
            break
        lines.extend(block)
    for line in lines:
        line.no_wrap, line.overflow = True, "ellipsis"
        line.truncate(width, overflow="ellipsis")
    return lines[:max(1, height)]


def _block(fleet: FleetState, serial: str, groups: tuple[Group, ...], now: float,
           silent_after: float, width: int) -> list[Text]:
    first = Text(no_wrap=True, overflow="ellipsis")
    first.append(visible(serial), style="bold")
    first.append(f"  {fleet.counts[serial]:,} messages", style="dim")
    errors = fleet.errors.get(serial)
    if errors:
        first.append(f" · {errors} unreadable", style="red")
    quiet = now - fleet.heard[serial]
    if quiet > silent_after:
        first.append(f" · SILENT, last heard {display_ago(quiet)}", style="bold red")
    else:
        first.append(f" · heard {display_ago(quiet)}", style="dim")
    lines = [first]
    values = fleet.latest[serial]
    grouped: set[int | str] = set()
    for group in groups:
        items = []
        for observation, label, name in group.fields:
            latest = values.get(observation)
            # the number means this on a charger only: an Equalizer's 31 is no IsEnabled
            if latest is not None and latest.name == name:
                grouped.add(observation)
                items.append((label, latest))
        if items:
            lines.append(_group_line(group.name, items, now, width))
    others = [(visible(latest.name), latest)  # a replayed capture names its own
              for key, latest in sorted(values.items(), key=_by_id_then_kind)
              if key not in grouped]
    if others:
        lines.append(_group_line("other", others, now, width))
    return lines


def _by_id_then_kind(item: tuple[int | str, Latest]) -> tuple[int, str]:
    key = item[0]
    return (key, "") if isinstance(key, int) else (1 << 30, key)


def _group_line(name: str, items: list[tuple[str, Latest]], now: float, width: int) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"  {name:<{_LABEL_WIDTH}}", style="cyan")
    for number, (label, latest) in enumerate(items):
        if len(line) > width:  # what follows would be cropped (a charger has dozens)
            break
        if number:
            line.append(" · ", style="dim")
        line.append(f"{label} ", style="dim")
        fresh = latest.changed and now - latest.changed < HIGHLIGHT
        line.append(display_state_value(latest.value, latest.label, latest.unit),
                    style="reverse" if fresh else "bold")
        if latest.history is not None:
            bars = sparkline(latest.history)
            if bars:
                line.append(" " + bars, style="green")
    return line
