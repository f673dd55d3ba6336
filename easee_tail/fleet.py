"""A simulated fleet of Easee chargers, producing messages exactly as the cloud sends them.

Each charger lives a life in simulated time: it boots, waits, and charges cars in sessions
of plausible length (20 minutes to 2.5 hours at 3.7-22 kW). A session runs as a real one
does: cable in and locked, authorisation by RFID, ChargingSessionStart, Charging, and an
end of one of several kinds (the car is full, the cable is pulled, a schedule or the user
stops it), then ChargingSession with its start, stop and energy. Telemetry (power, session
and lifetime energy, currents, voltages, signal, temperature) comes between the events, at
whatever pace makes up the asked message rate, and its energy adds up.

Every charger but the first has trouble of one kind, in its first session and now and then
after (`TROUBLES`): an error with its code and text, a reboot with its reason, a cloud
disconnect (silence, a reason, charging on at the offline fallback), a load-balancing limit,
an RFID that is not authorised, or it goes silent for good. With a seed the whole fleet,
trouble included, is the same on every run.

Time: per charger, timestamps never go backwards. `time_scale` plays simulated time faster
than the clock (60: an hour a minute), with every duration and energy in simulated time.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

_SERIAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
TROUBLES = ("error", "reboot", "cloud", "loadbalance", "rfid", "silent")
# An error the demo can raise: (ErrorCode, ErrorString). Made up for the simulation.
_ERRORS = ((34, "Ground fault detected on the incoming supply"),
           (41, "Temperature too high at the type 2 socket"),
           (57, "Relay welded, charging stopped for safety"))
_DISCONNECT_REASONS = ("MQTT_KEEP_ALIVE_TIMEOUT", "SERVER_INITIATED_DISCONNECT",
                       "CONNECTION_LOST")
_CHARGING_TELEMETRY = (120, 121, 124, 182, 183, 184, 190, 191, 192)
_IDLE_TELEMETRY = (132, 150, 190, 191, 192, 120)
_QUIET = "quiet"  # a pseudo event: no telemetry until the time it carries
_POWER = "power"  # a pseudo event: the power changes where nobody hears (offline)
_SESSION_START, _SESSION_END = "session start", "session end"


@dataclass(frozen=True, slots=True)
class WireMessage:
    routing_key: str
    body: bytes
    headers: dict[str, object]
    received: float = 0.0  # simulated time a consumer takes it (for the demo's own clock)


def dotnet_time(epoch: float) -> str:
    """The cloud's time format: ISO-8601 UTC with seven fraction digits."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


Event = tuple[float, "int | str", object]  # (simulated time, observation or pseudo, value)


@dataclass
class _Charger:
    serial: str
    trouble: str | None
    lifetime_kwh: float
    rssi: int
    temperature: int
    measured: float = 0.0  # the last timestamp sent: the next is later
    metered: float = 0.0  # simulated time up to which energy was added
    power_kw: float = 0.0
    phases: int = 3
    session_id: int = 0
    session_start: float = 0.0
    meter_at_start: float = 0.0
    token: str = ""
    quiet_until: float = 0.0
    next_telemetry: float = 0.0


class _Life:
    """One charger's events in simulated time, planned as they are asked for."""

    def __init__(self, charger: _Charger, rng: random.Random, start: float,
                 step: float = 0.05) -> None:
        self.charger, self.rng, self.t = charger, rng, start
        self.step = step  # seconds between the messages of a boot
        self.sessions = 0

    def at(self, gap: float, observation: int | str, value: object = None) -> Event:
        self.t += gap
        return self.t, observation, value

    def events(self) -> Iterator[Event]:
        yield from self._boot(first=True)
        wait = self.rng.uniform(2, 60)  # the first session soon, even at the clock's pace
        while True:
            self.t += wait
            trouble = self.charger.trouble if (
                self.sessions == 0 or self.rng.random() < 0.3) else None
            if trouble == "silent" and not self.sessions:
                trouble = None  # one session first, then silence for good
            elif trouble == "silent":
                yield self.at(0, _QUIET, math.inf)
                return
            yield from self._session(trouble)
            self.sessions += 1
            wait = self.rng.uniform(15 * 60, 3 * 3600)

    def _boot(self, first: bool = False) -> Iterator[Event]:
        charger = self.charger
        steps: list[tuple[int, object]] = [(80, 328), (250, True)]
        if first:
            steps += [(21, 1), (146, 1), (141, 1), (31, True), (44, True), (47, 32.0),
                      (48, 32.0), (22, 32.0), (23, 32.0), (24, 32.0), (50, 16), (51, 16),
                      (52, 16), (124, round(charger.lifetime_kwh, 3))]
        steps += [(109, 1), (96, 50), (46, 18)]
        for observation, value in steps:
            yield self.at(self.step, observation, value)

    def _session(self, trouble: str | None) -> Iterator[Event]:
        rng, charger = self.rng, self.charger
        token = "".join(rng.choice("0123456789ABCDEF") for _ in range(8))
        yield self.at(0, 109, 2)  # a car plugged in
        yield self.at(1, 103, True)
        yield self.at(0.5, 104, rng.choice([20, 32]))
        yield self.at(1, 109, 7)
        yield self.at(0.2, 96, 55)
        yield self.at(rng.uniform(5, 30), 108, token[::-1])
        yield self.at(0.1, 128, token)
        if trouble == "rfid":  # not authorised: no session, the car is unplugged again
            yield self.at(2, 109, 8)
            yield self.at(1, 109, 2)
            yield self.at(0.2, 96, 55)
            yield self.at(rng.uniform(60, 300), 103, False)
            yield self.at(0.5, 109, 1)
            yield self.at(0.2, 96, 50)
            return
        phases = rng.choice([1, 3, 3])
        amps = rng.choice([16.0, 16.0, 32.0]) if phases == 3 else rng.choice([16.0, 32.0])
        power = round(phases * 230 * amps / 1000, 3)
        charger.token = token
        yield self.at(1, _SESSION_START, phases)
        yield self.at(0.5, 110, 30 if phases == 3 else 10)
        yield self.at(0.2, 48, amps)
        yield self.at(0.2, 109, 3)
        yield self.at(0.1, 96, 0)
        yield self.at(0.1, 46, 24)
        yield self.at(0.5, 120, power)
        length = rng.uniform(20 * 60, 150 * 60)
        middle = length * rng.uniform(0.2, 0.5)
        if trouble == "error":
            code, text = rng.choice(_ERRORS)
            yield self.at(middle, 119, code)
            yield self.at(0.1, 118, text)
            yield self.at(0.2, 109, 5)
            yield self.at(0.1, 96, 56)
            yield self.at(0.2, 120, 0.0)
            yield self.at(rng.uniform(120, 600), 119, 0)
            yield self.at(0.1, 118, "")
            yield from self._unplug(rng.uniform(60, 600), charging=False)
            return
        if trouble == "reboot":
            yield self.at(middle, 120, 0.0)
            yield self.at(rng.uniform(15, 40), 89, rng.choice([1 << 5, 1 << 3, 1 << 4]))
            yield from self._boot()
            yield self.at(0.5, _SESSION_END, None)  # the interrupted session, reported
            yield self.at(0.2, 103, True)
            yield from self._unplug(rng.uniform(60, 900), charging=False, ended=True)
            return
        if trouble == "cloud":  # offline: it charges on at the fallback, then the car leaves
            yield self.at(middle, 250, False)
            yield self.at(0.1, 251, rng.choice(_DISCONNECT_REASONS))
            outage = rng.uniform(5 * 60, 20 * 60)
            yield self.at(0.1, _QUIET, self.t + outage)
            fallback = 16.0 if amps > 16 else amps
            offline_power = round(phases * 230 * fallback / 1000, 3)
            yield self.at(0.1, _POWER, offline_power)
            yield self.at(outage, 250, True)
            yield self.at(0.1, 120, offline_power)
            yield self.at(0.1, 96, 30)  # limited by offline settings until the cloud says more
            yield self.at(0.5, 48, fallback)
            yield from self._unplug(rng.uniform(1, 20), charging=True)
            return
        if trouble == "loadbalance":
            limit = 6.0
            yield self.at(middle, 111, limit)
            yield self.at(0.1, 112, limit)
            yield self.at(0.1, 113, limit)
            yield self.at(0.5, 96, 27)
            yield self.at(0.5, 120, round(phases * 230 * limit / 1000, 3))
            yield self.at(rng.uniform(5 * 60, 25 * 60), 111, 40.0)
            yield self.at(0.1, 112, 40.0)
            yield self.at(0.1, 113, 40.0)
            yield self.at(0.5, 96, 0)
            yield self.at(0.5, 120, power)
            middle = 0.0
        rest = max(60.0, length - middle)
        ending = rng.choices(["full", "unplugged", "schedule", "user"], [5, 3, 1, 1])[0]
        if ending == "full":
            yield self.at(rest, 109, 4)
            yield self.at(0.2, 120, 0.0)
            yield self.at(0.1, 96, 79)
            yield from self._unplug(rng.uniform(5 * 60, 60 * 60), charging=False)
        elif ending == "unplugged":
            yield from self._unplug(rest, charging=True)
        elif ending == "schedule":
            yield self.at(rest, 96, 76)
            yield self.at(0.2, 109, 2)
            yield self.at(0.2, 120, 0.0)
            yield from self._unplug(rng.uniform(10 * 60, 90 * 60), charging=False)
        else:
            yield self.at(rest, 31, False)
            yield self.at(0.2, 96, 53)
            yield self.at(0.2, 109, 2)
            yield self.at(0.2, 120, 0.0)
            yield self.at(rng.uniform(30, 300), 31, True)
            yield from self._unplug(rng.uniform(60, 600), charging=False)

    def _unplug(self, gap: float, charging: bool, ended: bool = False) -> Iterator[Event]:
        """The cable pulled (while charging or after); the session reported, unless it was."""
        yield self.at(gap, 103, False)
        yield self.at(0.2, 109, 1)
        if charging:
            yield self.at(0.1, 120, 0.0)
        yield self.at(0.1, 96, 50)
        if not ended:
            yield self.at(0.5, _SESSION_END, None)
        yield self.at(0.1, 46, 18)


class Fleet:
    """Messages from `chargers` chargers in simulated time, each stamped as the cloud does."""

    def __init__(
        self, chargers: int = 4, seed: int | None = None,
        delay_ms: tuple[float, float] = (40, 400), time_scale: float = 1.0,
    ) -> None:
        self._random = random.Random(seed)
        self._seed = seed
        self._delay_ms = delay_ms
        self.time_scale = time_scale
        self._received = 0.0  # the latest message's simulated receive time
        self.chargers = [
            _Charger(
                serial=self._serial(index),
                trouble=TROUBLES[(index - 1) % len(TROUBLES)] if index else None,
                lifetime_kwh=round(self._random.uniform(200, 9000), 3),
                rssi=self._random.randint(-75, -45),
                temperature=self._random.randint(15, 30),
            )
            for index in range(chargers)
        ]
        if chargers == 1:  # a fleet of one never goes silent for good
            self.chargers[0].trouble = None

    def messages(self, start: float, rate: float) -> Iterator[tuple[float, WireMessage]]:
        """An endless stream of about `rate` messages a second of the clock, from `start`
        (epoch seconds): (the clock time it is due, the message)."""
        every = len(self.chargers) * self.time_scale / rate  # telemetry, per charger
        lives: list[Iterator[Event]] = []
        queue: list[tuple[float, int, Event | None]] = []  # (time, charger, event or telemetry)
        for index, charger in enumerate(self.chargers):
            rng = random.Random(self._random.random())
            charger.measured = charger.metered = start - 1.0
            # not all in step, and booted soon at any rate: within a telemetry round
            step = min(0.05, every / 4)
            booted = start + rng.uniform(0, min(3.0, every))
            lives.append(_Life(charger, rng, booted, step).events())
            self._next_event(queue, lives, index)
            charger.next_telemetry = booted + 20 * step + self._random.uniform(0, every)
            heapq.heappush(queue, (charger.next_telemetry, index, None))
        while queue:
            moment, index, event = heapq.heappop(queue)
            charger = self.chargers[index]
            if event is None:  # telemetry, unless the charger is quiet
                charger.next_telemetry = max(moment, charger.quiet_until) + \
                    every * self._random.uniform(0.5, 1.5)
                if charger.next_telemetry != math.inf:
                    heapq.heappush(queue, (charger.next_telemetry, index, None))
                if moment < charger.quiet_until:
                    continue
                message = self._telemetry(charger, moment)
            else:
                self._next_event(queue, lives, index)
                if event[1] == _QUIET:
                    charger.quiet_until = float(event[2])  # type: ignore[arg-type]
                    continue
                if event[1] == _POWER:
                    self._meter(charger, moment)
                    charger.power_kw = float(event[2])  # type: ignore[arg-type]
                    continue
                message = self._event(charger, event)
            yield start + (message.received - start) / self.time_scale, message

    def _next_event(self, queue: list[tuple[float, int, Event | None]],
                    lives: list[Iterator[Event]], index: int) -> None:
        event = next(lives[index], None)
        if event is not None:
            heapq.heappush(queue, (event[0], index, event))

    def _serial(self, index: int) -> str:
        prefix = "EH" if index % 3 else "EC"
        return prefix + "".join(self._random.choice(_SERIAL_ALPHABET) for _ in range(6))

    # Turning an event or a telemetry reading into a message.

    def _meter(self, charger: _Charger, moment: float) -> None:
        """Energy up to `moment` at the power last sent."""
        if moment > charger.metered:
            charger.lifetime_kwh += charger.power_kw * (moment - charger.metered) / 3600
            charger.metered = moment

    def _event(self, charger: _Charger, event: Event) -> WireMessage:
        moment, observation, value = event
        self._meter(charger, moment)
        if observation == _SESSION_START:
            charger.session_id += 1
            charger.phases = int(value)  # type: ignore[call-overload]
            charger.session_start = moment
            charger.meter_at_start = charger.lifetime_kwh
            observation, value = 223, orjson.dumps({
                "Id": charger.session_id, "MeterValue": round(charger.lifetime_kwh, 3),
                "Start": dotnet_time(moment), "Auth": charger.token, "AuthReason": 0,
            }).decode()
        elif observation == _SESSION_END:
            observation, value = 129, orjson.dumps({
                "Id": charger.session_id, "Start": dotnet_time(charger.session_start),
                "Stop": dotnet_time(moment),
                "EnergyKwh": round(charger.lifetime_kwh - charger.meter_at_start, 4),
                "MeterValueStart": round(charger.meter_at_start, 3),
                "MeterValueStop": round(charger.lifetime_kwh, 3),
                "Auth": charger.token, "AuthReason": 0,
            }).decode()
        elif observation == 120:
            charger.power_kw = float(value)  # type: ignore[arg-type]
        return self._wire(charger, int(observation), value, moment, exact=True)

    def _telemetry(self, charger: _Charger, moment: float) -> WireMessage:
        charging = charger.power_kw > 0
        step = self._random.choice(_CHARGING_TELEMETRY if charging else _IDLE_TELEMETRY)
        if step == 132:
            charger.rssi = max(-95, min(-35, charger.rssi + self._random.randint(-2, 2)))
            return self._wire(charger, step, charger.rssi, moment)
        if step == 150:
            charger.temperature = max(5, min(60, charger.temperature
                                             + self._random.randint(-1, 1)))
            return self._wire(charger, step, charger.temperature, moment)
        self._meter(charger, moment)
        noise = self._random.uniform(-0.02, 0.02) if charging else 0.0
        amps = charger.power_kw * 1000 / 230 / charger.phases  # per phase in use
        values: dict[int, object] = {
            120: round(charger.power_kw * (1 + noise), 3),
            121: round(charger.lifetime_kwh - charger.meter_at_start, 4),
            124: round(charger.lifetime_kwh, 3),
            182: round(amps * (1 + noise), 2),
            183: round(amps * (1 - noise), 2) if charger.phases == 3 else 0.0,
            184: round(amps * (1 + noise / 2), 2) if charger.phases == 3 else 0.0,
            190: round(230 + self._random.uniform(-3, 3), 1),
            191: round(230 + self._random.uniform(-3, 3), 1),
            192: round(230 + self._random.uniform(-3, 3), 1),
        }
        return self._wire(charger, step, values[step], moment)

    def _wire(self, charger: _Charger, observation: int, value: object, moment: float,
              exact: bool = False) -> WireMessage:
        """`moment`: when an event happened (`exact`) or a reading is received; the
        charger measured it before, and never before what it sent last."""
        delay = self._random.uniform(*self._delay_ms) / 1000
        measured = moment if exact else moment - delay
        measured = max(measured, charger.measured + 1e-4)
        charger.measured = measured
        arrived = measured + delay * self._random.uniform(0.6, 0.95)
        # one queue, one consumer: received in the order sent, whatever the delays
        self._received = max(self._received, measured + delay)
        body = orjson.dumps({"Timestamp": dotnet_time(measured), "Value": value})
        return WireMessage(
            routing_key=f"{charger.serial}.O.{observation}",
            body=body,
            headers={"ArrivalTime": dotnet_time(arrived)},
            received=self._received,
        )
