"""What every file connection is held to: the address it reached, and the file's total deadline.

A `Transfer` is the context of one file (every redirect hop and the body). While it is current on a
thread, each connection that thread makes or reuses is checked and watched here, at the socket level:

- The peer address of a newly connected socket is checked against the link-local rule
  (`HostPolicy.check_peer`) before a byte is sent. That is the address the bytes really go to, so a DNS
  answer that changes between a check and the connection (rebinding) cannot slip through. Host header
  and TLS SNI are untouched: the connection is made to the name as usual.
- The socket is registered with the transfer; when the deadline passes, a timer shuts every registered
  socket down. A read blocked in the middle of a chunk returns at once (a read timeout cannot do that: a
  host that sends a byte every few seconds never trips it), and the transfer fails, to be reported as
  `FileTooSlow` by the fetcher.

A connection made with no current transfer is refused: no code path may open a file connection unchecked.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from services.downloader.url_policy import HostPolicy
from shared.errors import ForbiddenHost

_local = threading.local()


class Transfer:
    """One file's deadline and host policy; `with transfer:` makes it current on this thread."""

    def __init__(self, policy: HostPolicy, seconds: float, what: str = "file"):
        self.policy = policy
        self.seconds = seconds
        self.what = what
        self.started = time.monotonic()
        self._expired = False
        self._finished = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._previous: Transfer | None = None

    def __enter__(self) -> Transfer:
        self._previous = getattr(_local, "transfer", None)
        _local.transfer = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()
        _local.transfer = self._previous

    @property
    def expired(self) -> bool:
        return self._expired

    @property
    def age(self) -> float:
        return time.monotonic() - self.started

    def finish(self) -> bool:
        """Stops the clock; True when the deadline had passed (the sockets are then unusable)."""
        with self._lock:
            self._finished = True
            self._sockets.clear()
        self._timer.cancel()
        return self._expired

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self._finished:
                return
            if self._expired:
                _shut(sock)  # connected after the deadline (a slow connect): no use for it
            elif sock not in self._sockets:
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)


def current() -> Transfer | None:
    return getattr(_local, "transfer", None)


def _shut(sock: socket.socket) -> None:
    """Shuts a socket down from another thread, so a blocked read there returns; closing is left to its owner."""
    # OSError: already closed, or detached into a TLS socket (which is registered itself).
    with contextlib.suppress(OSError):
        # The plain socket method, also for a TLS socket: SSLSocket.shutdown would drop its SSL object
        # under the feet of the thread reading from it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _connected(host: str, sock: socket.socket) -> None:
    transfer = current()
    try:
        if transfer is None:
            raise ForbiddenHost(f"a connection to file host {host} was opened outside a checked transfer")
        transfer.policy.check_peer(host, str(sock.getpeername()[0]))
    except BaseException:
        sock.close()
        raise
    transfer.watch(sock)


def _reused(sock: Any) -> None:
    transfer = current()
    if transfer is not None and sock is not None:
        transfer.watch(sock)


class CheckedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _connected(self.host, sock)
        return sock

    def connect(self) -> None:
        super().connect()
        _reused(self.sock)  # for TLS, the wrapped socket that replaced the plain one

    def request(self, *args: Any, **kwargs: Any) -> None:
        _reused(self.sock)  # a pooled connection, connected during an earlier transfer
        super().request(*args, **kwargs)


class CheckedHTTPSConnection(CheckedHTTPConnection, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


class CheckedAdapter(HTTPAdapter):
    """requests' adapter with the checked connections in its pools."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}
