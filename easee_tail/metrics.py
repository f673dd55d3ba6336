"""--metrics: what the run sees, served for Prometheus (the prometheus_client package).

Nothing is counted twice: a collector reads the run's Stats (and the source, the alerts)
when Prometheus scrapes, on the HTTP server's thread, taking copies made in one step each
(dict(), list()) so that the loop is never held up and never locked. With --metrics off
none of this is imported.

Label sets are bounded: observations by catalogue name (the unknown ids share "Unknown",
unreadable messages "(unreadable)"), chargers only with --metrics-per-charger, where a
fleet's serials are the labels the user asked for.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import ProcessCollector, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import CollectorRegistry

from easee_tail import __version__
from easee_tail.alerts import Alerts
from easee_tail.errors import EaseeTailError, ExitCode
from easee_tail.sinks import Watcher
from easee_tail.source import Source
from easee_tail.stats import HISTOGRAM_EDGES, Stats

PREFIX = "easee_tail"
# how often the server's thread looks whether the run has ended: the most a run's end waits
# for it (prometheus_client's own start_http_server looks every 0.5 s)
SERVER_POLL = 0.05
MAX_OBSERVATION_LABELS = 1000  # beyond the catalogue's names: never reached by real traffic


class MetricsAddressError(EaseeTailError):
    """The --metrics address cannot be listened on (in use, not this machine's, no right)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class MetricsOptions:
    address: tuple[str, int]  # (host, port); port 0: the system picks one
    per_charger: bool = False


class Collector:
    """The metrics, read from the run's state at each scrape."""

    def __init__(self, stats: Stats, source: Source, backlog: int | None,
                 alerts: Alerts | None, per_charger: bool) -> None:
        self._stats = stats
        self._source = source
        self._backlog = backlog
        self._alerts = alerts
        self._per_charger = per_charger

    def collect(self) -> Iterator[Metric]:
        stats, source = self._stats, self._source
        now = time.monotonic()
        info = GaugeMetricFamily(f"{PREFIX}_info", "easee-tail and what it consumes",
                                 labels=["version", "server", "queue"])
        info.add_metric([__version__, str(source.server), str(source.queue)], 1)
        yield info
        yield CounterMetricFamily(f"{PREFIX}_messages", "Messages shown (that passed the "
                                  "filters)", value=stats.total)
        by_name = CounterMetricFamily(f"{PREFIX}_observation_messages", "Messages shown, by "
                                      "observation name", labels=["observation"])
        for name, count in sorted(dict(stats.per_observation).items())[:MAX_OBSERVATION_LABELS]:
            by_name.add_metric([name], count)
        yield by_name
        per_charger = dict(stats.per_charger)
        yield GaugeMetricFamily(f"{PREFIX}_chargers", "Chargers heard from in this run",
                                value=len(per_charger))
        if self._per_charger:
            by_charger = CounterMetricFamily(f"{PREFIX}_charger_messages", "Messages shown, "
                                             "by charger", labels=["charger"])
            for charger, count in sorted(per_charger.items()):
                by_charger.add_metric([charger], count)
            yield by_charger
        tally = stats.tally
        if tally is not None:
            yield CounterMetricFamily(f"{PREFIX}_received_messages", "Messages taken from the "
                                      "source, shown or filtered out", value=tally.received)
            yield CounterMetricFamily(f"{PREFIX}_filtered_messages", "Messages the filters "
                                      "removed", value=tally.filtered)
        yield CounterMetricFamily(f"{PREFIX}_decode_errors", "Messages that could not be "
                                  "read (shown as error records)", value=stats.errors)
        yield CounterMetricFamily(f"{PREFIX}_redelivered_messages", "Messages the broker "
                                  "marked as redelivered", value=stats.redelivered)
        yield CounterMetricFamily(f"{PREFIX}_stale_messages", "Old values the cloud sent "
                                  "again: measured over --stale-after before they reached it",
                                  value=stats.stale)
        yield CounterMetricFamily(f"{PREFIX}_repeated_messages", "Messages with the same value "
                                  "and Timestamp as the last of their charger and observation",
                                  value=stats.repeated)
        yield CounterMetricFamily(f"{PREFIX}_clock_skewed_messages", "Messages whose "
                                  "ArrivalTime was over 2 s ahead of this machine's clock "
                                  "(not counted as latency)", value=stats.skewed)
        yield self._latency(stats)
        yield CounterMetricFamily(f"{PREFIX}_reconnects", "Connections made again after one "
                                  "was lost", value=source.reconnects)
        yield GaugeMetricFamily(f"{PREFIX}_reconnecting", "1 while the connection is being "
                                "made again", value=1 if source.status else 0)
        last = stats.last_received
        yield GaugeMetricFamily(f"{PREFIX}_seconds_since_last_message", "Seconds since a "
                                "message was last shown (since the start before the first)",
                                value=now - (stats.started if last is None else last))
        if self._backlog is not None:
            yield GaugeMetricFamily(f"{PREFIX}_backlog_at_start_messages", "Messages waiting "
                                    "in the queue when the run started", value=self._backlog)
        if self._alerts is not None:
            alert = GaugeMetricFamily(f"{PREFIX}_alert", "1 while an --alert-* bound is "
                                      "crossed", labels=["alert"])
            for kind, raised in dict(self._alerts.raised).items():
                alert.add_metric([kind], 1 if raised else 0)
            yield alert

    @staticmethod
    def _latency(stats: Stats) -> HistogramMetricFamily:
        counts = list(stats.histogram)
        buckets: list[tuple[str, float]] = []
        below = 0
        for edge, count in zip(HISTOGRAM_EDGES, counts, strict=False):
            below += count
            buckets.append((repr(edge / 1000), below))  # "0.0", "0.025", "10.0": as the client
        buckets.append(("+Inf", below + counts[-1]))
        return HistogramMetricFamily(
            f"{PREFIX}_latency_seconds", "From ArrivalTime (the cloud got the message) to "
            "easee-tail receiving it", buckets=buckets, sum_value=stats.latency_sum / 1000)


class MetricsSink(Watcher):
    """Serves the collector on --metrics from the start of the run to its end."""

    def __init__(self, options: MetricsOptions, collector: Collector) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        ProcessCollector(registry=registry)  # the usual process_* (memory, CPU, descriptors)
        host, port = options.address
        try:
            self._server = _server(host, port, make_wsgi_app(registry))
        except OSError as problem:
            reason = problem.strerror or str(problem)
            raise MetricsAddressError(f"--metrics {_joined(host, port)}: cannot listen there "
                                      f"({reason})") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        kwargs={"poll_interval": SERVER_POLL}, daemon=True)
        self._thread.start()
        bound_port = self._server.server_address[1]
        self.url = f"http://{_joined(host, bound_port)}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape is not news


def _server(host: str, port: int, app: Any) -> ThreadingWSGIServer:
    """prometheus_client's threading WSGI server on `host` (IPv4 or IPv6, as it resolves)."""
    family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                flags=socket.AI_PASSIVE)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family

    return make_server(host, port, app, Server, handler_class=_Quiet)


def _joined(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

