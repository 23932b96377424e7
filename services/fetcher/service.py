"""The fetcher: polls every unit on an interval and hands new dossiers to the download queue."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from services.fetcher.poll import poll_unit
from shared.broker.connection import CONNECTION_ERRORS, connect
from shared.broker.publisher import Publisher
from shared.broker.topology import Topology
from shared.db.engine import make_engine, wait_for_schema
from shared.errors import DongboError, PermanentError
from shared.observability import POLLS, health_of
from shared.onestop import OneStopClient
from shared.service import StatusReporter
from shared.settings import Settings

log = logging.getLogger(__name__)


class Fetcher:
    def __init__(self, settings: Settings, *, once: bool = False):
        settings.require("onestop_url", "onestop_username", "onestop_password", "units")
        self.settings = settings
        self.once = once
        self.client = OneStopClient.from_settings(settings)
        self.engine = make_engine(settings.database_url.get_secret_value())
        wait_for_schema(self.engine, "fetcher")
        self.topology = Topology.from_settings(settings)
        self.reporter = StatusReporter(self.engine, "fetcher")
        self.stopping = threading.Event()
        self.connected = False
        self.last_turn = time.time()
        self.polled_all = False  # the last round reached the end of every unit's answer without an error

    def health(self) -> tuple[bool, str]:
        # A poll of a big unit may take long; it turns the loop once per chunk of dossiers.
        return health_of(lambda: self.connected, lambda: self.last_turn, max_idle=self.settings.poll_interval + 600)()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> int:
        """Returns the exit status: with `once`, 1 unless every unit was polled to the end."""
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                connection = connect(self.settings.amqp_url.get_secret_value(), "fetcher", self.settings.heartbeat)
            except CONNECTION_ERRORS as exc:
                log.warning("fetcher: broker unreachable (%s); retrying in %.1fs", exc or type(exc).__name__, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            try:
                channel = connection.channel()
                self.topology.declare(channel)
                publisher = Publisher(channel, self.topology)
                self.connected = True
                self._poll_forever(connection, publisher)
            except CONNECTION_ERRORS as exc:
                log.warning("fetcher: broker connection lost (%s); reconnecting", exc or type(exc).__name__)
            finally:
                self.connected = False
                if connection.is_open:
                    connection.close()
            if self.once:
                break
        self.client.close()
        if self.once and not self.polled_all:
            log.error("fetcher: the poll did not complete (see the errors above)")
            return 1
        return 0

    def _poll_forever(self, connection, publisher: Publisher) -> None:
        while not self.stopping.is_set():
            self.poll_all(publisher)
            if self.once:
                self.stopping.set()
                return
            deadline = time.monotonic() + self.settings.poll_interval
            while not self.stopping.is_set() and time.monotonic() < deadline:
                connection.sleep(min(1.0, max(0.0, deadline - time.monotonic())))  # keeps heartbeats flowing
                self.last_turn = time.time()

    def poll_all(self, publisher: Publisher) -> None:
        self.polled_all = False
        complete = True
        for madonvi in self.settings.units:
            if self.stopping.is_set():
                return
            try:
                result = poll_unit(self.client, publisher, self.engine, self.topology, madonvi,
                                   inflight_timeout=timedelta(seconds=self.settings.inflight_timeout),
                                   stopping=self.stopping)
                complete = complete and result.complete
                if result.complete:
                    POLLS.labels(madonvi, "ok").inc()
                self.reporter.progress()
            except CONNECTION_ERRORS:
                raise
            except DongboError as exc:
                POLLS.labels(madonvi, exc.reason).inc()
                level = logging.ERROR if isinstance(exc, PermanentError) else logging.WARNING
                log.log(level, "unit %s: poll failed (%s): %s", madonvi, exc.reason, exc, extra={"madonvi": madonvi})
                self.reporter.error(f"{madonvi}: {exc.reason}: {exc}")
                complete = False
            except Exception as exc:  # the outermost loop: log with traceback, keep polling the other units
                POLLS.labels(madonvi, "unexpected").inc()
                log.exception("unit %s: poll failed unexpectedly", madonvi, extra={"madonvi": madonvi})
                self.reporter.error(f"{madonvi}: unexpected: {exc}")
                complete = False
            self.last_turn = time.time()
        self.polled_all = complete
