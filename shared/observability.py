"""Prometheus metrics and the health endpoint every service serves on DONGBO_METRICS_PORT.

`GET /metrics` is Prometheus' text format; `GET /healthz` answers 200 while the service's broker channel
is open and its loop has turned recently, else 503 with the reason — what the container health check
(`dongbo healthcheck`) asks.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

DOSSIERS = Counter("dongbo_dossiers_total", "Dossiers a service finished", ["service"])
FILES = Counter("dongbo_files_total", "Files stored (stored) or found already stored (skipped)", ["outcome"])
BYTES = Counter("dongbo_bytes_total", "Bytes of files written to the bucket")
FAILURES = Counter(
    "dongbo_failures_total", "Failed messages by service, reason and decision", ["service", "reason", "decision"]
)
STAGE_SECONDS = Histogram(
    "dongbo_stage_seconds",
    "Time to handle one message or batch",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
QUEUE_LAG = Histogram(
    "dongbo_queue_lag_seconds",
    "Time from the fetch of a dossier to the end of a stage",
    ["service"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
POLLS = Counter("dongbo_polls_total", "One-stop polls by unit and result", ["madonvi", "result"])
LAST_PROGRESS = Gauge("dongbo_last_progress_timestamp_seconds", "When the service last finished work", ["service"])

HealthCheck = Callable[[], tuple[bool, str]]


def health_of(is_connected: Callable[[], bool], last_turn: Callable[[], float], max_idle: float = 120.0) -> HealthCheck:
    """Healthy while connected to the broker and the loop turned within `max_idle` seconds."""

    def check() -> tuple[bool, str]:
        if not is_connected():
            return False, "broker channel is not open"
        idle = time.time() - last_turn()
        if idle > max_idle:
            return False, f"no progress for {idle:.0f}s"
        return True, "ok"

    return check


def serve(port: int, check: HealthCheck, host: str = "127.0.0.1") -> ThreadingHTTPServer | None:
    """Starts the metrics and health server in a daemon thread; port 0 means off.

    It binds the loopback address unless `host` (DONGBO_METRICS_HOST) names another: the counters tell
    anyone who can reach them how much the archive holds and when it fails.
    """
    if not port:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path.startswith("/metrics"):
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                ok, detail = check()
                self._send(200 if ok else 503, json.dumps({"ok": ok, "detail": detail}).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # health probes would flood the log
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:  # a port taken or an address not here: a setting to fix, said in one line
        from shared.errors import ConfigError

        raise ConfigError(f"DONGBO_METRICS_PORT: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics and health on %s:%d (/metrics, /healthz)", host, port)
    return server
