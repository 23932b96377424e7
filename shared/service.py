"""What every service does around its own work: settings, logging, signals, health, exit codes.

A service is built from the settings by its `build(settings)` and then `run()` until `stop()`. The queue
services (downloader, indexer, acker, inspector) differ only in their queue, their handler and its tuning:
`queue_service()` builds them all the same way.
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
from typing import Any, Protocol

from sqlalchemy import Table, update
from sqlalchemy.engine import Engine

from shared import observability
from shared.backoff import Backoff
from shared.broker.connection import broker_urls
from shared.broker.consumer import BatchHandler, Consumer
from shared.broker.outcome import DeadLetter, Decision, Delivery, Retry
from shared.broker.publisher import MADONVI_HEADER, MAHOSO_HEADER
from shared.broker.topology import Topology
from shared.db import sync_state
from shared.db.engine import make_engine, wait_for_schema
from shared.db.models import ServiceStatus
from shared.db.sync_state import insert_for
from shared.errors import ConfigError
from shared.logs import add_secret, add_url_secret, one_line, setup_logging
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
    for url in broker_urls(settings.amqp_url.get_secret_value()):
        add_url_secret(url)  # each broker address of a list: the list as a whole is no URL
    add_url_secret(settings.database_url.get_secret_value())
    if settings.onestop_proxy:
        add_url_secret(settings.onestop_proxy)


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
    try:
        observability.serve(settings.metrics_port, service.health, host=settings.metrics_host)
    except ConfigError as exc:
        print(f"dongbo {name}: {exc}", file=sys.stderr)
        return 2
    log.info("%s: starting", name)
    status = service.run()
    return status if isinstance(status, int) else 0  # a one-shot run reports whether it did its work


# What `stopped()` leaves in `last_error`: the table has no column of its own for a clean exit, and an
# instance that exited is not in error, so `dongbo status` reads this note as "stopped", never as an error.
STOPPED_NOTE = "stopped: the process exited cleanly"


class StatusReporter:
    """Writes this process's last progress and last error to `service_status`, at most every few seconds.

    Building one writes nothing: `start()` records the start (or the first progress or error does), and
    `stopped()` a clean exit, so that status can tell a stopped instance even on another host.
    """

    def __init__(self, engine: Engine, service: str, every: float = 5.0):
        self.engine = engine
        self.service = service
        self.instance = f"{service}@{socket.gethostname()}:{os.getpid()}"
        self.every = every
        self._last_write = 0.0
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Records that this instance started, with no error yet."""
        self._started = True
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

    def stopped(self) -> None:
        """Records a clean exit (a crash leaves the row as it was: status judges it by its age)."""
        if self._started:
            self._write({"last_error": STOPPED_NOTE, "last_error_at": _now()})

    def _write(self, values: dict[str, Any], insert: bool = False) -> None:
        if not self._started:  # nobody called start(): the first write records it
            self._started, insert = True, True
            values = {"started_at": _now(), "last_error": None, "last_error_at": None, **values}
        table: Table = ServiceStatus.__table__  # type: ignore[attr-defined]  # set by SQLModel, not in its stubs
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


FailureHook = Callable[[Delivery, Decision], None]


def failure_recorder(engine: Engine, service: str, reporter: StatusReporter, *, sync_failures: bool = True,
                     also: FailureHook | None = None) -> FailureHook:
    """The consumer's failure hook: the dossier's sync state and the service status say what went wrong.

    `sync_failures=False`: a stage whose failure says nothing about the dossier's sync (the inspector, the
    corrections); only the metrics and the service status record it, and `also`, the stage's own record."""

    def record(delivery: Delivery, decision: Decision) -> None:
        if not isinstance(decision, DeadLetter | Retry):
            return
        final = isinstance(decision, DeadLetter)
        observability.FAILURES.labels(service, decision.reason, "dead-letter" if final else "retry").inc()
        reporter.error(f"{decision.reason}: {decision.error}")
        if also is not None:
            also(delivery, decision)
        mahoso = delivery.headers.get(MAHOSO_HEADER)
        if not mahoso or not sync_failures:
            return
        with engine.begin() as connection:
            sync_state.record_failure(connection, str(mahoso), str(delivery.headers.get(MADONVI_HEADER, "")),
                                      decision.reason, f"{service}: {decision.error}", final)

    return record


class QueueService:
    """A queue service: the consumer of its stage, and the status row it keeps up to date."""

    def __init__(self, consumer: Consumer, reporter: StatusReporter):
        self.consumer = consumer
        self.reporter = reporter

    def run(self) -> None:
        self.reporter.start()
        self.consumer.run()
        self.reporter.stopped()  # not on an exception: that exit was not clean

    def stop(self) -> None:
        self.consumer.stop()

    def health(self) -> tuple[bool, str]:
        return self.consumer.health()


def queue_service(
    settings: Settings,
    name: str,
    stage: str,
    make_handler: Callable[[Engine], BatchHandler],
    *,
    concurrency: int = 1,
    batch_size: int = 1,
    batch_wait: float = 0.0,
    sync_failures: bool = True,
    record_failure: Callable[[Engine], FailureHook] | None = None,
    handler_threads: int = 0,
) -> QueueService:
    """Builds a queue service: waits for the current schema, then wires the handler to its queue.

    `handler_threads`: threads of the handler's own that use the database besides the consumer's.
    """
    # A connection for each thread that may use the database at once: the consumer's workers, the
    # handler's own threads, the status reporter and the failure recorder.
    engine = make_engine(settings.database_url.get_secret_value(),
                         connections=max(5, concurrency + handler_threads + 2))
    wait_for_schema(engine, name)
    handle = make_handler(engine)
    reporter = StatusReporter(engine, name)
    consumer = Consumer(
        service=name,
        amqp_url=settings.amqp_url.get_secret_value(),
        topology=Topology.from_settings(settings),
        stage=stage,
        handle=handle,
        concurrency=concurrency,
        batch_size=batch_size,
        batch_wait=batch_wait,
        heartbeat=settings.heartbeat,
        on_failure=failure_recorder(engine, name, reporter, sync_failures=sync_failures,
                                    also=record_failure(engine) if record_failure else None),
        on_progress=reporter.progress,
    )
    return QueueService(consumer, reporter)


def wait_until_ready(action: Callable[[], object], what: str, max_delay: float = 30.0):
    """Runs a start-up step until it stops failing with a transient error (a store still starting)."""
    from shared.errors import TransientError

    backoff = Backoff(first=0.5, cap=max_delay)
    while True:
        try:
            return action()
        except TransientError as exc:
            delay = backoff.next()
            # One line per attempt; the traceback only at DEBUG.
            log.warning("%s not ready (%s); next try in %.1fs", what, one_line(exc), delay)
            log.debug("%s not ready", what, exc_info=True)
            time.sleep(delay)
