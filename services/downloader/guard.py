"""What every file connection is held to: the address it reached, and the file's total deadline.

A `Transfer` is the context of one file (every redirect hop and the body). While it is current on a
thread, each connection that thread makes or reuses is checked and watched here, at the socket level:

- The peer address of a newly connected socket is checked against the link-local rule
  (`HostPolicy.check_peer`) before a byte is sent. That is the address the bytes really go to, so a DNS
  answer that changes between a check and the connection (rebinding) cannot slip through. Host header
  and TLS SNI are untouched: the connection is made to the name as usual.
- The socket is registered with the transfer; when the deadline passes, the watchdog shuts every
  registered socket down. A read blocked in the middle of a chunk returns at once (a read timeout cannot do that: a
  host that sends a byte every few seconds never trips it), and the transfer fails, to be reported as
  `FileTooSlow` by the fetcher.

A connection made with no current transfer is refused: no code path may open a file connection unchecked.

One watchdog thread per process keeps every transfer's deadline in a heap and expires them in order. A
timer thread per file did the same, but starting a thread for every file was a measurable part of a busy
downloader's time with small files.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from typing import Any

import certifi
from urllib3 import PoolManager
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
        self._previous: Transfer | None = None

    def __enter__(self) -> Transfer:
        self._previous = getattr(_local, "transfer", None)
        _local.transfer = self
        _watchdog.watch(self, self.started + self.seconds)
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
            first = not self._finished
            self._finished = True
            self._sockets.clear()
        if first:
            _watchdog.forget()
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


class _Watchdog:
    """Expires transfers at their deadlines, in order, from one daemon thread started on first use."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Transfer]] = []
        self._finished = 0  # entries in the heap whose transfer has finished before its deadline
        self._order = itertools.count()  # ties broken by arrival: transfers themselves do not compare
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, transfer: Transfer, deadline: float) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline, next(self._order), transfer))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="transfer-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is transfer:
                self._wake.notify()  # an earlier deadline than the one the thread sleeps towards

    def forget(self) -> None:
        """A transfer finished. Its entry stays in the heap (removing from the middle costs a search), but
        once most entries are finished ones the heap is rebuilt without them: deadlines are minutes long
        and files take milliseconds, so otherwise the heap would hold every file of the last hour."""
        with self._wake:
            self._finished += 1
            if self._finished > 64 and self._finished * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2]._finished]
                heapq.heapify(self._heap)
                self._finished = 0

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                due = heapq.heappop(self._heap)[2]
                if due._finished:
                    self._finished -= 1
                    continue
            due._expire()  # outside the lock: shutting sockets down must not hold up new transfers


_watchdog = _Watchdog()


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


def checked_pool_manager(pool_size: int, verify_tls: bool) -> PoolManager:
    """A connection pool per file host, thread-safe, whose every connection is a checked one.

    `pool_size` connections per host are kept for reuse (more may be open at once, and are closed when
    returned to a full pool). Certificates are checked against certifi's roots, as requests does.
    """
    tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", "ca_certs": certifi.where()} if verify_tls else {
        "cert_reqs": "CERT_NONE"}
    manager = PoolManager(num_pools=32, maxsize=pool_size, block=False, **tls)
    manager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}
    return manager
