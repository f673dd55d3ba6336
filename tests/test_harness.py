"""The test broker itself: a port taken between its pick and the broker's listen (an outgoing
connection of some test got it, as happened once in CI: every TLS test then failed) costs a
restart on other ports, not the run."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.harness.certs import Certificates
from tests.harness.rabbit import RabbitBroker


def test_a_broker_whose_tls_port_is_taken_starts_again_on_other_ports(
    tmp_path: Path, certs: Certificates
) -> None:
    broker = RabbitBroker(tmp_path / "rabbit", certs)
    taken = broker.amqps_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))  # bound, not listening: an outgoing connection's port
        broker.start()
        try:
            assert broker.amqps_port != taken
            with broker.channel() as channel:
                channel.queue_declare("harness-check")
            assert broker._listens(broker.amqps_port)  # TLS answers on the new port
        finally:
            broker.stop()
    assert any("eaddrinuse" in path.read_text(errors="replace")
               for path in (tmp_path / "rabbit" / "log-port-taken-1").glob("*.log"))
