"""A TCP proxy that can cut every connection through it at once, for broker-loss tests.

The services talk to RabbitMQ through it; `cut()` resets each live connection (RST, as a dead link or a
broker restart looks to a client) while new connections keep working. This injects the fault on the
wire instead of inside the broker, so the shared broker of the machine is never put at risk.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

from harness.services import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def for_amqp(cls, amqp_url: str) -> TcpProxy:
        hostport = amqp_url.partition("@")[2].partition("/")[0]
        host, _, port = hostport.partition(":")
        return cls(host, int(port or 5672))

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):  # the other direction may have closed it already
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> int:
        """Resets every connection open now; returns how many."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                except OSError:
                    pass
        return len(pairs)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()

    def url(self, amqp_url: str) -> str:
        """The same AMQP URL, through this proxy."""
        head, _, tail = amqp_url.partition("@")
        _hostport, _, vhost = tail.partition("/")
        return f"{head}@127.0.0.1:{self.port}/{vhost}"
