"""A simulated fleet of Easee chargers, producing messages exactly as the cloud sends them.

Each charger lives through boots, charging sessions (Disconnected -> AwaitingStart ->
Charging -> Completed -> Disconnected), telemetry whose energy adds up, RFID tokens,
reboots and cloud disconnects. The demo consumes it in-process; tests and benchmarks
publish it to a real broker.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

_SERIAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True, slots=True)
class WireMessage:
    routing_key: str
    body: bytes
    headers: dict[str, object]


def dotnet_time(epoch: float) -> str:
    """The cloud's time format: ISO-8601 UTC with seven fraction digits."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass
class _Charger:
    serial: str
    lifetime_kwh: float
    rssi: int
    temperature: int
    session_id: int = 0
    session_kwh: float = 0.0
    session_start: float = 0.0
    meter_at_start: float = 0.0
    token: str = ""
    power_kw: float = 0.0
    phases: int = 3
    last_power_at: float | None = None
    script: deque[tuple[int | str, object]] = field(default_factory=deque)


class Fleet:
    """Messages from `chargers` chargers, one at a time, stamped with the time asked for."""

    def __init__(
        self, chargers: int = 4, seed: int | None = None, delay_ms: tuple[float, float] = (40, 400)
    ) -> None:
        self._random = random.Random(seed)
        self._delay_ms = delay_ms
        self.chargers = [
            _Charger(
                serial=self._serial(index),
                lifetime_kwh=round(self._random.uniform(200, 9000), 3),
                rssi=self._random.randint(-75, -45),
                temperature=self._random.randint(15, 30),
            )
            for index in range(chargers)
        ]
        for charger in self.chargers:
            self._boot(charger)

    def messages(self, start: float, rate: float) -> Iterator[tuple[float, WireMessage]]:
        """An endless stream at `rate` messages per second from `start` (epoch seconds)."""
        interval = 1.0 / rate
        moment = start
        while True:
            yield moment, self.message_at(moment)
            moment += interval

    def message_at(self, now: float) -> WireMessage:
        charger = self._random.choice(self.chargers)
        if not charger.script:
            self._plan(charger)
        observation, value = charger.script.popleft()
        if observation == "energy":
            return self._energy(charger, now)
        return self._wire(charger, observation, value, now)

    # The charger's life, planned a phase at a time.

    def _serial(self, index: int) -> str:
        prefix = "EH" if index % 3 else "EC"
        return prefix + "".join(self._random.choice(_SERIAL_ALPHABET) for _ in range(6))

    def _boot(self, charger: _Charger) -> None:
        charger.script.extend([
            (80, 328), (21, 1), (146, 1), (141, 1), (250, True), (31, True), (44, True),
            (47, 32.0), (22, 32.0), (23, 32.0), (24, 32.0), (109, 1), (96, 50), (46, 18),
            (124, charger.lifetime_kwh),
        ])

    def _plan(self, charger: _Charger) -> None:
        roll = self._random.random()
        if roll < 0.03:
            charger.script.extend([(89, 1 << 4), (80, 328), (250, True), (109, 1)])
        elif roll < 0.06:
            charger.script.extend([
                (250, False), (251, "SERVER_INITIATED_DISCONNECT"), (250, True),
            ])
        elif roll < 0.45:
            self._session(charger)
        else:
            charger.rssi = max(-95, min(-35, charger.rssi + self._random.randint(-2, 2)))
            charger.temperature = max(5, min(60, charger.temperature + self._random.randint(-1, 1)))
            charger.script.extend([(132, charger.rssi), (150, charger.temperature)])

    def _session(self, charger: _Charger) -> None:
        charger.session_id += 1
        charger.token = "".join(self._random.choice("0123456789ABCDEF") for _ in range(8))
        phases = charger.phases = self._random.choice([1, 3, 3])
        amps = self._random.choice([10.0, 16.0, 16.0, 32.0])
        charger.power_kw = round(phases * 230 * amps / 1000, 3)
        charger.script.extend([
            (109, 2), (103, True), (104, 32), (96, 55), (109, 7),
            (108, charger.token[::-1]), (128, charger.token), ("session start", None),
            (110, 30 if phases == 3 else 10), (109, 3), (96, 0), (46, 24),
            (120, charger.power_kw),
        ])
        for _ in range(self._random.randint(4, 12)):
            charger.script.append(("energy", None))
        charger.script.extend([
            (109, 4), (120, 0.0), (182, 0.0), (183, 0.0), (184, 0.0), (96, 79), (46, 23),
            ("session end", None),
            (103, False), (109, 1), (96, 50), (46, 18),
        ])

    # Turning a planned step into a message.

    def _energy(self, charger: _Charger, now: float) -> WireMessage:
        if charger.last_power_at is not None:
            added = charger.power_kw * max(0.0, now - charger.last_power_at) / 3600
            charger.session_kwh += added
            charger.lifetime_kwh += added
        charger.last_power_at = now
        # one power reading, then the quantities that follow from it, round robin
        step = self._random.choice([120, 121, 124, 182, 183, 184, 190, 191, 192])
        noise = self._random.uniform(-0.02, 0.02)
        amps = charger.power_kw * 1000 / 230 / charger.phases  # per phase in use
        values: dict[int, object] = {
            120: round(charger.power_kw * (1 + noise), 3),
            121: round(charger.session_kwh, 4),
            124: round(charger.lifetime_kwh, 3),
            182: round(amps * (1 + noise), 2),
            183: round(amps * (1 - noise), 2) if charger.phases == 3 else 0.0,
            184: round(amps * (1 + noise / 2), 2) if charger.phases == 3 else 0.0,
            190: round(230 + self._random.uniform(-3, 3), 1),
            191: round(230 + self._random.uniform(-3, 3), 1),
            192: round(230 + self._random.uniform(-3, 3), 1),
        }
        return self._wire(charger, step, values[step], now)

    def _wire(self, charger: _Charger, observation: int | str, value: object, now: float) -> WireMessage:
        if observation == "session start":
            charger.session_kwh = 0.0
            charger.session_start = now
            charger.meter_at_start = charger.lifetime_kwh
            charger.last_power_at = now
            observation, value = 223, orjson.dumps({
                "Id": charger.session_id, "MeterValue": round(charger.lifetime_kwh, 3),
                "Start": dotnet_time(now), "Auth": charger.token, "AuthReason": 0,
            }).decode()
        elif observation == "session end":
            charger.last_power_at = None
            observation, value = 129, orjson.dumps({
                "Id": charger.session_id, "Start": dotnet_time(charger.session_start),
                "Stop": dotnet_time(now), "EnergyKwh": round(charger.session_kwh, 4),
                "MeterValueStart": round(charger.meter_at_start, 3),
                "MeterValueStop": round(charger.lifetime_kwh, 3),
                "Auth": charger.token, "AuthReason": 0,
            }).decode()
        delay = self._random.uniform(*self._delay_ms) / 1000
        measured = now - delay
        arrived = measured + delay * self._random.uniform(0.6, 0.95)
        body = orjson.dumps({"Timestamp": dotnet_time(measured), "Value": value})
        return WireMessage(
            routing_key=f"{charger.serial}.O.{observation}",
            body=body,
            headers={"ArrivalTime": dotnet_time(arrived)},
        )
