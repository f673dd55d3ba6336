"""easee-tail left running as a monitor: --metrics scraped by a real HTTP client while the
installed process consumes the real broker, --alert-latency and --alert-silence said on
stderr (and ending the run with --exit-on-alert), and a clock behind the cloud's told apart
from latency."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from easee_tail.params import ListenAddress
from tests.conftest import BrokerQueue, Lines, Runner, assert_no_secrets
from tests.harness.rabbit import PASSWORD, RabbitBroker
from tests.harness.terminal import Terminal

STAMP = "2026-12-05T10:00:00Z"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def body(value: object) -> str:
    return json.dumps({"Timestamp": STAMP, "Value": value})


def arrived(seconds_ago: float) -> dict[str, object]:
    moment = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return {"ArrivalTime": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")}


def direct(cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, *more: str) -> list[str]:
    return ["--amqp-url", rabbit.amqps_url(), "--queue", queue.name,
            "--ca-file", str(cli.certs.ca_file), *more]


def scrape(url: str) -> tuple[str, Samples]:
    """The endpoint's text and its samples as Prometheus's own parser reads them."""
    reply = requests.get(url, timeout=10)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return reply.text, samples


def scrape_until(url: str, ready: Callable[[Samples], bool], timeout: float = 30
                 ) -> tuple[str, Samples]:
    """Scrape until the metrics show what the run has done (the sign), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        text, samples = scrape(url)
        if ready(samples):
            return text, samples
        if time.monotonic() > deadline:
            raise AssertionError(f"the metrics never got there:\n{text}")
        time.sleep(0.1)


def metrics_url(stderr: Lines) -> str:
    line = stderr.wait_for("metrics for Prometheus at ")
    return line.rsplit(" ", 1)[1].strip()


def stop(process: subprocess.Popen[str]) -> int:
    process.terminate()
    return process.wait(timeout=20)


def test_metrics_count_what_the_run_shows_and_a_real_client_scrapes_them(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    messages: list[tuple[str, str | bytes, dict[str, object] | None]] = []
    for _ in range(30):
        messages.append(("EHMETRC1.O.109", body(3), arrived(0)))
    for number in range(10):
        messages.append(("EHMETRC2.O.120", body(number / 10), arrived(120)))  # 2 min late
    messages.append(("EHMETRC2.O.999", body(1), None))  # an id no catalogue has
    messages.append(("EHMETRC1.O.120", b"not json {", None))
    queue.publish_many(messages)
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl", "--metrics", "0",
                                "--metrics-per-charger"))
    assert process.stdout is not None and process.stderr is not None
    stderr = Lines(process.stderr)
    url = metrics_url(stderr)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    shown = [json.loads(process.stdout.readline()) for _ in messages]
    assert len(shown) == 42
    text, samples = scrape_until(url, lambda s: s.get(("easee_tail_messages_total", ())) == 42)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("easee_tail_observation_messages_total", observation="ChargerOpMode") == 30
    assert value("easee_tail_observation_messages_total", observation="TotalPower") == 10
    assert value("easee_tail_observation_messages_total", observation="Unknown") == 1
    assert value("easee_tail_observation_messages_total", observation="(unreadable)") == 1
    assert value("easee_tail_charger_messages_total", charger="EHMETRC1") == 31
    assert value("easee_tail_charger_messages_total", charger="EHMETRC2") == 11
    assert value("easee_tail_chargers") == 2
    assert value("easee_tail_decode_errors_total") == 1
    assert value("easee_tail_backlog_at_start_messages") == 42
    assert value("easee_tail_reconnects_total") == 0
    assert value("easee_tail_reconnecting") == 0
    assert value("easee_tail_info", queue=queue.name, server=rabbit_server(samples),
                 version=version(samples)) == 1
    # 40 carry ArrivalTime: 30 fresh (within a minute even on a loaded machine), 10 that
    # came two minutes after it
    assert value("easee_tail_latency_seconds_count") == 40
    assert value("easee_tail_latency_seconds_bucket", le="+Inf") == 40
    assert value("easee_tail_latency_seconds_bucket", le="60.0") == 30
    assert value("easee_tail_latency_seconds_bucket", le="300.0") == 40
    assert value("easee_tail_latency_seconds_bucket", le="600.0") == 40
    assert value("easee_tail_latency_seconds_sum") >= 10 * 120
    assert value("easee_tail_seconds_since_last_message") >= 0
    assert value("process_resident_memory_bytes") > 0
    assert stop(process) == 143
    assert_no_secrets(text, stderr.text)
    assert PASSWORD not in text and "Traceback" not in stderr.text


def rabbit_server(samples: Samples) -> str:
    (labels,) = [dict(key[1]) for key in samples if key[0] == "easee_tail_info"]
    assert labels["server"].startswith("amqps://") and PASSWORD not in labels["server"]
    return labels["server"]


def version(samples: Samples) -> str:
    (labels,) = [dict(key[1]) for key in samples if key[0] == "easee_tail_info"]
    return labels["version"]


def test_chargers_are_labels_only_when_asked_for(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    queue.publish("EHLABEL1.O.109", body(3), arrived(0))
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl", "--metrics", "0"))
    assert process.stdout is not None and process.stderr is not None
    stderr = Lines(process.stderr)
    url = metrics_url(stderr)
    process.stdout.readline()
    text, samples = scrape_until(url, lambda s: s.get(("easee_tail_messages_total", ())) == 1)
    assert "EHLABEL1" not in text
    assert samples[("easee_tail_chargers", ())] == 1
    assert stop(process) == 143


def test_metrics_off_loopback_warn_and_an_address_in_use_is_one_line_exit_2(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl", "--metrics", "0.0.0.0:0"))
    assert process.stderr is not None
    stderr = Lines(process.stderr)
    warning = stderr.wait_for("warning:")
    assert "--metrics listens on 0.0.0.0, not loopback" in warning
    metrics_url(stderr)
    assert stop(process) == 143

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli.run(*direct(cli, rabbit, queue, "--jsonl", "--metrics", str(port)),
                         timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"--metrics 127.0.0.1:{port}: cannot listen there" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("given", "says"), [
    (["--metrics", ":9464"], "name the host"),
    (["--metrics", "70000"], "from 0 to 65535"),
    (["--metrics", "::1:9464"], "in brackets"),
    (["--metrics-per-charger"], "--metrics-per-charger adds labels to --metrics"),
    (["--exit-on-alert"], "none is set"),
    (["--alert-silence", "0"], "above 0 s"),
])
def test_monitor_flags_that_cannot_work_are_one_line_usage_errors(
    cli: Runner, given: list[str], says: str
) -> None:
    result = cli.run("demo", "--jsonl", "--count", "1", *given)
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_silence_is_alerted_and_its_end_told_and_exit_on_alert_ends_with_14(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl", "--alert-silence", "1s",
                                "--metrics", "0"))
    assert process.stdout is not None and process.stderr is not None
    stderr = Lines(process.stderr)
    url = metrics_url(stderr)
    alert = stderr.wait_for("alert:")
    assert "warning: alert: no message for" in alert and "since the start" in alert
    _text, samples = scrape(url)
    assert samples[("easee_tail_alert", (("alert", "silence"),))] == 1
    queue.publish("EHSILENT.O.109", body(3), arrived(0))
    assert json.loads(process.stdout.readline())["charger"] == "EHSILENT"
    assert "messages again, after a silence" in stderr.wait_for("recovered:")
    scrape_until(url, lambda s: s.get(("easee_tail_alert", (("alert", "silence"),))) == 0)
    assert "since the last one" in stderr.wait_for("since the last one")  # silent once more
    assert stop(process) == 143

    ended = cli.run(*direct(cli, rabbit, queue, "--jsonl", "--alert-silence", "1s",
                            "--exit-on-alert"), timeout=60)
    assert ended.returncode == 14, ended.stderr
    errors = [line for line in ended.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no message for" in errors[0]
    assert "--exit-on-alert ends the run" in errors[0] and "Traceback" not in ended.stderr


def test_latency_over_the_bound_is_alerted_and_recovers_when_p99_is_back(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl", "--alert-latency", "30s"),
                        stdout=subprocess.DEVNULL)
    assert process.stderr is not None
    stderr = Lines(process.stderr)
    queue.wait_for_consumers(1)
    queue.publish_many([("EHLATENT.O.120", body(1.0), arrived(300)) for _ in range(5)])
    alert = stderr.wait_for("alert:")
    assert "p99 latency over the last minute is above 30.0 s" in alert
    took = re.search(r"\((\d+) of (\d+) messages? took longer; --alert-latency\)", alert)
    assert took is not None and took[1] == took[2]  # every one so far was late
    # 500 in time: 5 late of 505 is under 1 %
    queue.publish_many([("EHLATENT.O.120", body(1.0), arrived(0)) for _ in range(500)])
    recovered = stderr.wait_for("recovered:")
    back = re.search(r"within 30\.0 s again \(5 of (\d+) messages took longer\)", recovered)
    assert back is not None and 501 <= int(back[1]) <= 505  # 5 of 500 is still 1 %
    assert stop(process) == 143
    assert stderr.text.count("alert:") == 1


def test_a_clock_behind_the_cloud_is_said_once_and_counted_not_taken_as_latency(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue
) -> None:
    queue.publish_many([("EHSKEWED.O.120", body(1.0), arrived(-90)) for _ in range(3)]
                       + [("EHSKEWED.O.109", body(3), arrived(0))])
    process = cli.popen(*direct(cli, rabbit, queue, "--jsonl", "--metrics", "0"))
    assert process.stdout is not None and process.stderr is not None
    stderr = Lines(process.stderr)
    url = metrics_url(stderr)
    records = [json.loads(process.stdout.readline()) for _ in range(4)]
    for record in records[:3]:
        assert any("ahead of this machine's clock: this clock is behind" in note
                   for note in record["notes"]), record
        assert not any(note.startswith("negative latency") for note in record["notes"])
    assert "ahead of this machine's clock" not in json.dumps(records[3])
    warning = stderr.wait_for("this clock is behind")
    assert "EHSKEWED" in warning and "warning:" in warning
    _text, samples = scrape_until(
        url, lambda s: s.get(("easee_tail_clock_skewed_messages_total", ())) == 3)
    assert samples[("easee_tail_latency_seconds_count", ())] == 1
    assert stop(process) == 143
    assert stderr.text.count("this clock is behind") == 1


def test_the_table_marks_a_clock_behind_and_the_summary_counts_it(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, terminal: Callable[..., Terminal]
) -> None:
    queue.publish_many([("EHSKEWTB.O.120", body(1.0), arrived(-90)) for _ in range(3)])
    screen = terminal([cli.executable, *direct(cli, rabbit, queue)])
    shown = screen.wait_for(lambda text: "3 with the local clock behind" in text, timeout=30)
    assert shown.count("⚠ clock") == 3
    screen.press("C-c")
    ended = screen.wait_for(lambda text: "EXIT=" in text, timeout=20)
    assert "EXIT=130" in ended
    assert "3 with ArrivalTime over 2 s ahead of this machine's clock" in ended
    assert "negative latency" not in ended


def test_the_table_shows_a_silence_alert_above_it(
    cli: Runner, rabbit: RabbitBroker, queue: BrokerQueue, terminal: Callable[..., Terminal]
) -> None:
    screen = terminal([cli.executable, *direct(cli, rabbit, queue, "--alert-silence", "1s")])
    shown = screen.wait_for(lambda text: "alert: no message for" in text, timeout=30)
    assert "warning: alert:" in shown and "waiting for messages" in shown
    queue.publish("EHTABLEA.O.109", body(3), arrived(0))
    screen.wait_for(lambda text: "recovered:" in text and "EHTABLEA" in text, timeout=30)
    screen.press("C-c")
    assert "EXIT=130" in screen.wait_for(lambda text: "EXIT=" in text, timeout=20)


@pytest.mark.parametrize(("typed", "address"), [
    ("9464", ("127.0.0.1", 9464)),
    ("0.0.0.0:9464", ("0.0.0.0", 9464)),
    ("localhost:0", ("localhost", 0)),
    ("[::1]:9464", ("::1", 9464)),
])
def test_a_listen_address_is_a_port_on_loopback_or_a_host_and_port(
    typed: str, address: tuple[str, int]
) -> None:
    assert ListenAddress().convert(typed, None, None) == address
