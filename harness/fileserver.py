"""A real HTTP/1.1 file server on loopback for the transfer tests, with routes that misbehave on purpose.

Each route is a function of the request handler. The server counts requests per path and connections,
and records the raw request line path, so tests can see exactly what went over the wire. POST is routed
like GET (its body read and kept), so the same server can play a misbehaving one-stop API.

`gzip_bomb()` builds a small gzip body that decodes to a huge one, for the decompression tests.
"""

from __future__ import annotations

import socket
import ssl
import struct
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible
    server: _Server

    def setup(self):
        super().setup()
        with self.server.owner.lock:
            self.server.owner.connections += 1

    def log_message(self, format, *args):  # quiet test output
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.owner.lock:
            self.server.owner.posted.append(body)
        self.do_GET()

    def do_GET(self):
        owner = self.server.owner
        path = unquote(urlsplit(self.path).path)
        with owner.lock:
            owner.requests.append(self.path)
            owner.hits[path] += 1
        route = owner.routes.get(path)
        try:
            if route is None:
                self.send_bytes(b"not found", status=404, content_type="text/plain")
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up (timeouts, refused files): expected

    # -- building blocks for routes ------------------------------------------------------------------

    def send_bytes(self, data: bytes, status: int = 200, content_type: str = "application/octet-stream",
                   headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_body(self, length: int | None, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        """One chunk of a chunked body."""
        self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def reset(self) -> None:
        """Closes the connection with a TCP RST (SO_LINGER 0), as a crashed peer would."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def pause(self, seconds: float) -> None:
        """Waits, but wakes at once when the server stops."""
        self.server.owner.stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FileServer

    def handle_error(self, request, client_address):
        # A client that drops a half-read connection resets it; that is the point of several tests.
        quiet = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, ssl.SSLError)
        if not isinstance(sys.exc_info()[1], quiet):
            super().handle_error(request, client_address)


class FileServer:
    """`tls=(certificate file, key file)` serves HTTPS instead of HTTP."""

    def __init__(self, host: str = "127.0.0.1", tls: tuple[str, str] | None = None):
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[str] = []
        self.posted: list[bytes] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = _Server((host, 0), Handler)
        self._server.owner = self
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fileserver", daemon=True)

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def route(self, path: str, route: Route) -> str:
        """Adds a route at the decoded `path`; returns its URL."""
        self.routes[path] = route
        return self.url(path)

    # -- ready-made routes -----------------------------------------------------------------------

    def file(self, path: str, data: bytes, **headers: str) -> str:
        named = {k.replace("_", "-"): v for k, v in headers.items()}
        return self.route(path, lambda h: h.send_bytes(data, headers=named))

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.route(path, lambda h: h.send_bytes(b"", status=status, headers={"Location": location}))

    def status(self, path: str, status: int) -> str:
        return self.route(path, lambda h: h.send_bytes(b"error page", status=status, content_type="text/html"))

    def stream(self, path: str, blocks: Callable[[], Iterable[bytes]], length: int | None) -> str:
        """A body written block by block: with Content-Length, or chunked when `length` is None."""

        def serve(h: Handler) -> None:
            h.start_body(length)
            for block in blocks():
                h.write_chunk(block) if length is None else h.wfile.write(block)
            if length is None:
                h.end_chunks()

        return self.route(path, serve)

    def short(self, path: str, declared: int, sent: bytes) -> str:
        """Announces `declared` bytes, sends fewer, and closes the connection."""

        def serve(h: Handler) -> None:
            h.start_body(declared)
            h.wfile.write(sent)
            h.close_connection = True

        return self.route(path, serve)

    def reset_mid_body(self, path: str, declared: int, sent: bytes) -> str:
        def serve(h: Handler) -> None:
            h.start_body(declared)
            h.wfile.write(sent)
            h.reset()

        return self.route(path, serve)

    def drip(self, path: str, pieces: list[bytes], delay: float) -> str:
        """Sends pieces with a pause between them (a stalled server)."""

        def serve(h: Handler) -> None:
            h.start_body(sum(len(piece) for piece in pieces))
            for piece in pieces:
                h.wfile.write(piece)
                h.wfile.flush()
                h.pause(delay)

        return self.route(path, serve)


def gzip_bomb(decoded_bytes: int, member: int = 16 * 1024**2) -> bytes:
    """A gzip body of zeros that decodes to `decoded_bytes`, about a thousandth of that on the wire.

    Built as one compressed member repeated (RFC 1952 allows several; every decoder reads them all), so
    a gigabyte costs a test a fraction of a second rather than compressing a gigabyte.
    """
    count, rest = divmod(decoded_bytes, member)
    one = _gzip_member(member)
    return one * count + (_gzip_member(rest) if rest else b"")


def _gzip_member(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(bytes(size)) + compressor.flush()
