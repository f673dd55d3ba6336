"""Charging sessions rebuilt from a charger's records, and how each one ended.

A session starts with ChargingSessionStart (223) or, where there is none, with the op mode
going to Charging; it ends with ChargingSession (129, which carries start, stop and energy)
or, where none came, when the cable is out (op mode Disconnected). A 129 that follows an
ending already seen fills it in. A session the capture began in the middle of comes from
its 129 alone; one still going at the end of the capture is open.

How it ended is read from what happened while it ran, the strongest sign first: an error
(with its code and text), a reboot (with its reason), the cloud link lost (with its reason),
the car full (op mode Completed), a schedule or the user (ReasonForNoCurrent, codes in
data/story.json), a limit from the circuit, or the cable pulled while charging. A car that
never charged because its RFID token was refused (AwaitingAuthentication, then
Deauthenticating) is listed too, as "not authorised", with no energy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from easee_tail.captures.story import Chargers, Heard, Meter, StoryData, moment
from easee_tail.captures.story import field as key
from easee_tail.text import visible
from easee_tail.times import parse_time, span

if TYPE_CHECKING:
    from rich.table import Table

MERGE_WITHIN = 600.0  # seconds: a 129 this close to an ending already seen fills it in


@dataclass
class Session:
    charger: str
    start: datetime | None
    id: object = None  # the charger's session id, where a session record gave one
    stop: datetime | None = None
    energy_kwh: float | None = None  # from ChargingSession, else from TotalPower readings
    peak_kw: float | None = None
    token: str | None = None
    ended: str = "open"
    limits: list[str] = field(default_factory=list)  # what held it back on the way
    reported: bool = False  # a ChargingSession record came for it
    # what happened while it ran, for `ended`
    error: str | None = None
    reboot: str | None = None
    cloud: str | None = None
    completed: bool = False
    stopped_by: str | None = None

    @property
    def duration(self) -> float | None:
        if self.start is None or self.stop is None:
            return None
        return (self.stop - self.start).total_seconds()

    def as_json(self) -> dict[str, object]:
        def text(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat().replace("+00:00", "Z")

        return {
            "charger": self.charger, "id": self.id, "start": text(self.start),
            "stop": text(self.stop), "duration_s": None if self.duration is None
            else round(self.duration, 1), "energy_kwh": self.energy_kwh,
            "peak_kw": self.peak_kw, "token": self.token, "ended": self.ended,
            "open": self.stop is None, "limits": self.limits,
        }


class _Rebuild:
    """One charger's sessions, from its records in the order of its clock."""

    def __init__(self, charger: str, data: StoryData) -> None:
        self.charger, self.data = charger, data
        self.sessions: list[Session] = []
        self.open: Session | None = None
        self.mode: int | None = None
        self.reason: tuple[int, str] | None = None
        self.token: str | None = None
        self.error_text: str | None = None
        self.cloud_reason: str | None = None
        self.meter = Meter()  # since the open session began
        self.asked: datetime | None = None  # when authorisation was last asked for

    def feed(self, record: Heard) -> None:
        data, at, value = self.data, moment(record), record.value
        number = record.id
        if number == data.power:
            self.meter.reading(value, at)
        elif number in data.tokens and isinstance(value, str) and value:
            self.token = value
        elif number == data.session_start:
            self._close(at, "a new session started")
            self._open(at, key(value, "Id"), parse_time(key(value, "Start")) or at,
                       key(value, "Auth"))
        elif number == data.session_end:
            self._reported(record, at)
        elif number == data.mode and isinstance(value, int):
            self._mode(value, at)
        elif number == data.reason and isinstance(value, int):
            self._reason(value, record.label or str(value))
        elif number == data.error_code and isinstance(value, int) and value:
            if self.open:
                self.open.error = f"error {value}" + (
                    f": {self.error_text}" if self.error_text else "")
        elif number == data.error_text and isinstance(value, str):
            self.error_text = value or None
            if self.open and self.open.error and value and ":" not in self.open.error:
                self.open.error += f": {value}"
        elif number == data.reboot and self.open:
            self.open.reboot = f"reboot ({record.label or value})"
        elif number == data.cloud_reason and isinstance(value, str):
            self.cloud_reason = value
            if self.open and self.open.cloud:
                self.open.cloud = f"cloud lost ({value})"
        elif number == data.cloud and value is False and self.open:
            self.open.cloud = "cloud lost" + (f" ({self.cloud_reason})"
                                              if self.cloud_reason else "")
        elif number == data.enabled and value is False and self.open:
            self.open.stopped_by = "stopped by user (charger disabled)"

    def _open(self, at: datetime, number: object, start: datetime, auth: object) -> None:
        self.open = Session(self.charger, start, id=number,
                            token=auth if isinstance(auth, str) and auth else self.token)
        self.sessions.append(self.open)
        self.meter.advance(at)
        self.meter.restart()
        self.asked = None

    def _mode(self, mode: int, at: datetime) -> None:
        modes, previous = self.data.modes, self.mode
        self.mode = mode
        if mode == modes["charging"] and self.open is None:
            self._open(at, None, at, None)
        elif self.open is None:
            if mode == modes["awaiting_authentication"]:
                self.asked = at
            elif mode == modes["deauthenticating"] and self.asked is not None:
                # a car that never charged: the token was refused
                token = f" (token {self.token})" if self.token else ""
                self.sessions.append(Session(self.charger, self.asked, stop=at, token=self.token,
                                             ended=f"not authorised{token}"))
                self.asked = None
            return
        elif mode == modes["completed"]:
            self.open.completed = True
        elif mode == modes["error"] and not self.open.error:
            self.open.error = "error" + (f": {self.error_text}" if self.error_text else "")
        elif mode == modes["disconnected"]:
            pulled = previous == modes["charging"]
            self._close(at, "cable pulled while charging" if pulled else "unplugged")

    def _reason(self, code: int, label: str) -> None:
        self.reason = (code, label)
        session, endings = self.open, self.data.endings
        if session is None:
            return
        if code in endings["schedule"]:
            session.stopped_by = "stopped by schedule"
        elif code in endings["user"]:
            session.stopped_by = "stopped by user (charger disabled)"
        elif code in endings["circuit"] and label not in session.limits:
            session.limits.append(label)

    def _reported(self, record: Heard, at: datetime) -> None:
        value = record.value
        start = parse_time(key(value, "Start"))
        stop = parse_time(key(value, "Stop")) or at
        energy = key(value, "EnergyKwh")
        session = self.open
        if session is None:  # an ending already seen, or a session begun before the capture
            last = self.sessions[-1] if self.sessions else None
            near = last is not None and not last.reported and last.stop is not None and \
                abs((stop - last.stop).total_seconds()) <= MERGE_WITHIN
            if near and last is not None:
                session = last
            else:
                session = Session(self.charger, start, id=key(value, "Id"), ended="unknown "
                                  "(the capture began during it)")
                self.sessions.append(session)
        session.reported = True
        session.id = key(value, "Id") if session.id is None else session.id
        session.start = start or session.start
        auth = key(value, "Auth")
        session.token = auth if isinstance(auth, str) and auth else session.token
        if isinstance(energy, int | float) and not isinstance(energy, bool):
            session.energy_kwh = round(float(energy), 4)
        if session is self.open:
            self._close(stop, "ended")
        else:
            session.stop = session.stop or stop

    def _close(self, at: datetime, plain: str) -> None:
        session = self.open
        if session is None:
            return
        self.open = None
        session.stop = at
        self.meter.advance(at)
        self._measured(session)
        session.ended = (session.error or session.reboot or session.cloud
                         or ("car full" if session.completed else None)
                         or session.stopped_by
                         or (f"limited by the circuit ({session.limits[-1]})"
                             if session.limits and plain != "cable pulled while charging"
                             and self.reason and self.reason[0] in self.data.endings["circuit"]
                             else None)
                         or plain)

    def finish(self) -> list[Session]:
        if self.open is not None:  # still going when the capture ends
            self.open.ended = "open"
            self._measured(self.open)
        return self.sessions

    def _measured(self, session: Session) -> None:
        """What the power readings say of the session: its peak, and its energy where no
        ChargingSession gave it."""
        session.peak_kw = self.meter.peak
        if session.energy_kwh is None and self.meter.kwh:
            session.energy_kwh = round(self.meter.kwh, 4)


def sessions(chargers: Chargers, data: StoryData) -> list[Session]:
    """Every charger's sessions (records as `story.in_order` gives them), a charger at a
    time, in the order of its clock."""
    found: list[Session] = []
    for serial, charger in chargers.items():
        rebuild = _Rebuild(serial, data)
        for event in charger.events():
            if isinstance(event, tuple):
                rebuild.meter.reading(*event)
            else:
                rebuild.feed(event)
        found.extend(rebuild.finish())
    return found


def _local(moment: datetime | None) -> str:
    return "…" if moment is None else f"{moment.astimezone():%m-%d %H:%M}"


def table(found: Iterable[Session]) -> Table:
    from rich.table import Table
    view = Table(box=None, padding=(0, 1, 0, 0), header_style="bold", expand=False)
    for name, right in (("charger", False), ("id", True), ("start", False), ("stop", False),
                        ("lasted", True), ("kWh", True), ("peak kW", True), ("token", False),
                        ("how it ended", False)):
        view.add_column(name, justify="right" if right else "left",
                        no_wrap=name != "how it ended", ratio=1 if name == "how it ended"
                        else None)
    for session in found:
        view.add_row(*_cells(session),
                     style="yellow" if session.stop is None else None)
    return view


def _cells(session: Session) -> list[str]:
    ended = session.ended
    if session.limits and not ended.startswith("limited"):
        ended += "; on the way: " + ", ".join(session.limits)
    return [
        visible(session.charger), "" if session.id is None else visible(str(session.id)),
        _local(session.start), _local(session.stop) if session.stop else "open",
        "" if session.duration is None else span(session.duration),
        "" if session.energy_kwh is None else f"{session.energy_kwh:.2f}",
        "" if session.peak_kw is None else f"{session.peak_kw:.1f}",
        visible(session.token or ""), visible(ended),
    ]
