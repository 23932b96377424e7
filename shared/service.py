"""What every service does around its own work: settings, logging, signals, health, exit codes.

A service is built from the settings by its `build(settings)` and then `run()` until `stop()`.
A wrong setting ends the process with one line naming it and exit code 2; SIGTERM and SIGINT stop it
gracefully (exit 0).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.engine import Engine

from shared import observability
from shared.db import sync_state
from shared.db.models import ServiceStatus
from shared.db.sync_state import insert_for
from shared.errors import ConfigError
from shared.logs import add_secret, setup_logging
from shared.settings import Settings, load_settings

log = logging.getLogger(__name__)


class Service(Protocol):
    def run(self) -> int | None: ...
    def stop(self) -> None: ...
    def health(self) -> tuple[bool, str]: ...


def register_secrets(settings: Settings) -> None:
    for secret in (settings.onestop_password, settings.s3_secret_key):
        if secret is not None:
            add_secret(secret.get_secret_value())
    for url in (settings.amqp_url, settings.database_url):
        value = url.get_secret_value()
        if "@" in value and ":" in value.split("@")[0].split("//")[-1]:
            add_secret(value.split("@")[0].split("//")[-1].split(":", 1)[1])


def main(name: str, build: Callable[[Settings], Service], settings: Settings | None = None) -> int:
    try:
        settings = settings or load_settings()
        setup_logging(settings.log_level, settings.log_json)
        register_secrets(settings)
        if not settings.onestop_verify_tls:
            log.warning("TLS certificates of the one-stop system and its file hosts are NOT verified "
                        "(DONGBO_ONESTOP_VERIFY_TLS=false): anyone on the path can read the password and the files")
        service = build(settings)
    except ConfigError as exc:
        print(f"dongbo {name}: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum, _frame):
        log.info("%s: received %s; finishing in-flight work", name, signal.Signals(signum).name)
        service.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    observability.serve(settings.metrics_port, service.health)
    log.info("%s: starting", name)
    status = service.run()
    return status if isinstance(status, int) else 0  # a one-shot run reports whether it did its work


class StatusReporter:
    """Writes this process's last progress and last error to `service_status`, at most every few seconds."""

    def __init__(self, engine: Engine, service: str, every: float = 5.0):
        self.engine = engine
        self.service = service
        self.instance = f"{service}@{socket.gethostname()}:{os.getpid()}"
        self.every = every
        self._last_write = 0.0
        self._lock = threading.Lock()
        self._write({"started_at": _now(), "last_error": None, "last_error_at": None}, insert=True)

    def progress(self) -> None:
        observability.LAST_PROGRESS.labels(self.service).set_to_current_time()
        with self._lock:
            if time.monotonic() - self._last_write < self.every:
                return
            self._last_write = time.monotonic()
        self._write({"last_progress_at": _now()})

    def error(self, text: str) -> None:
        self._write({"last_error": text[:2000], "last_error_at": _now()})

    def _write(self, values: dict, insert: bool = False) -> None:
        table = ServiceStatus.__table__
        try:
            with self.engine.begin() as connection:
                sync_state.informational(connection)
                if insert:
                    stmt = insert_for(connection, table).values(instance=self.instance, service=self.service, **values)
                    connection.execute(stmt.on_conflict_do_update(index_elements=["instance"], set_=values))
                else:
                    connection.execute(update(table).where(table.c.instance == self.instance).values(**values))
        except Exception as exc:  # status is informational: never let it stop the work
            log.warning("%s: could not write service status: %s", self.service, exc)


def _now() -> datetime:
    return datetime.now(UTC)


def failure_recorder(engine: Engine, service: str, reporter: StatusReporter):
    """The consumer's failure hook: the dossier's sync state and the service status say what went wrong."""
    from shared.broker.outcome import DeadLetter
    from shared.broker.publisher import MADONVI_HEADER, MAHOSO_HEADER

    def record(delivery, decision) -> None:
        final = isinstance(decision, DeadLetter)
        observability.FAILURES.labels(service, decision.reason, "dead-letter" if final else "retry").inc()
        reporter.error(f"{decision.reason}: {decision.error}")
        mahoso = delivery.headers.get(MAHOSO_HEADER)
        if not mahoso:
            return
        with engine.begin() as connection:
            sync_state.record_failure(connection, str(mahoso), str(delivery.headers.get(MADONVI_HEADER, "")),
                                      decision.reason, f"{service}: {decision.error}", final)

    return record


def wait_until_ready(action: Callable[[], object], what: str, max_delay: float = 30.0):
    """Runs a start-up step until it stops failing with a transient error (a store still starting)."""
    from shared.errors import TransientError

    delay = 0.5
    while True:
        try:
            return action()
        except TransientError as exc:
            log.warning("%s not ready (%s); retrying in %.0fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
