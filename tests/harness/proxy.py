"""A TCP proxy on loopback that the tests can cut or silence: the network faults a broker
restart does not make. TLS passes through it untouched (it only copies bytes)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading

from tests.harness.rabbit import free_port


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._silent = threading.Event()  # when set, bytes are swallowed, not forwarded
        self._hang_up = threading.Event()  # when set, a new connection's TLS hello is cut
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Reset every open connection, as a dropped network path would end them."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for end in pair:
                with contextlib.suppress(OSError):
                    end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    end.close()

    def silence(self, on: bool = True) -> None:
        """Black-hole the open connections (nothing arrives, nothing fails) or stop doing so.
        New connections are refused meanwhile."""
        if on:
            self._silent.set()
        else:
            self._silent.clear()

    def hang_up_in_handshake(self, on: bool = True) -> None:
        """New connections read the client's TLS hello and end cleanly (EOF) before any
        answer: a broker or load balancer going down mid-handshake."""
        if on:
            self._hang_up.set()
        else:
            self._hang_up.clear()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._silent.is_set():
                client.close()
                continue
            if self._hang_up.is_set():
                with contextlib.suppress(OSError):
                    client.recv(65536)  # the hello, read: the close is an EOF, not a reset
                    client.shutdown(socket.SHUT_RDWR)
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        ends = {client: upstream, upstream: client}
        try:
            while True:
                readable, _, _ = select.select(list(ends), [], [], 0.2)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    if not self._silent.is_set():
                        ends[source].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for end in ends:
                with contextlib.suppress(OSError):
                    end.close()
