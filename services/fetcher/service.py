"""The fetcher: polls every unit on an interval and hands new dossiers to the download queue.

A failure never turns into a tight loop: reconnecting waits with a growing, jittered delay
(`shared.backoff`) that is reset only by a round of polls that went through, and a round that broke on a
unit starts the next round with the unit after it, so one unit that keeps failing cannot keep the others
from being polled. A broker refusal is narrowed down to its dossier (shared/handoff.py).
A unit that returns nothing for a whole day is worth a warning once a day (`shared.quiet_units`).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from services.fetcher.catalog import CatalogCopier
from shared.backoff import Backoff
from shared.broker.connection import CONNECTION_ERRORS
from shared.broker.publisher import Publisher
from shared.broker.session import BrokerSession
from shared.broker.topology import Topology
from shared.db.engine import make_engine, wait_for_schema
from shared.errors import ConfigError, DongboError, PermanentError
from shared.handoff import ChunkRefused, Refusals, poll_unit
from shared.observability import POLLS, health_of
from shared.onestop import OneStopClient
from shared.onestop.dossier_items import ItemLimits
from shared.quiet_units import QuietUnits
from shared.service import StatusReporter
from shared.settings import Settings
from shared.unit_codes import unit_list_problems

log = logging.getLogger(__name__)

# With `once`: how many rounds a broken connection may cost (a refused message takes two to be parked).
ONCE_ROUNDS = 3


class Fetcher:
    def __init__(self, settings: Settings, *, once: bool = False):
        self.units = settings.unit_codes()
        if problems := unit_list_problems(self.units):
            raise ConfigError("DONGBO_UNITS: " + "; ".join(problems))
        self.settings = settings
        self.once = once
        self.client = OneStopClient.from_settings(settings)  # ConfigError naming a missing one-stop setting
        self.engine = make_engine(settings.database_url.get_secret_value())
        wait_for_schema(self.engine, "fetcher")
        self.topology = Topology.from_settings(settings)
        self.reporter = StatusReporter(self.engine, "fetcher")
        self.stopping = threading.Event()
        self.connected = False
        self.last_turn = time.time()
        self.polled_all = False  # the last round reached the end of every unit's answer without an error
        self.limits = ItemLimits.from_settings(settings)
        self.refusals = Refusals()
        self.first_unit = 0  # where the next round starts: after the unit the last one broke on
        self.backoff = Backoff(0.5, 30.0)
        self.catalog = CatalogCopier(self.client, self.engine, settings.catalog_interval)
        self.quiet = QuietUnits()

    def health(self) -> tuple[bool, str]:
        # A poll of a big unit may take long; it turns the loop once per chunk of dossiers.
        return health_of(lambda: self.connected, lambda: self.last_turn, max_idle=self.settings.poll_interval + 600)()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> int:
        """Returns the exit status: with `once`, 1 unless every unit was polled to the end."""
        self.reporter.start()
        status = self._run()
        self.reporter.stopped()  # not on an exception: that exit was not clean
        return status

    def _run(self) -> int:
        rounds = 0
        while not self.stopping.is_set():
            try:
                session = BrokerSession.open(self.settings.amqp_url.get_secret_value(), "fetcher", self.topology,
                                             heartbeat=self.settings.heartbeat)
            except CONNECTION_ERRORS as exc:
                delay = self.backoff.next()
                log.warning("fetcher: broker unreachable (%s); retrying in %.1fs", exc or type(exc).__name__, delay)
                self.stopping.wait(delay)
                continue
            try:
                self.connected = True
                self._poll_forever(session.connection, session.publisher)
            except ChunkRefused as exc:
                # Those dossiers go one at a time next round, so that the refused one is found and parked.
                if len(exc.mahosos) == 1:
                    self.refusals.culprits.update(exc.mahosos)
                else:
                    self.refusals.suspects.update(exc.mahosos)
                log.error("fetcher: %s; reconnecting", exc, extra={"madonvi": exc.madonvi})
            except CONNECTION_ERRORS as exc:
                log.warning("fetcher: broker connection lost (%s); reconnecting", exc or type(exc).__name__)
            finally:
                self.connected = False
                session.close()
            rounds += 1
            if self.once and (self.stopping.is_set() or rounds >= ONCE_ROUNDS):
                break
            # Not at once: whatever broke may break again, and a round costs a full sync call per unit.
            self.stopping.wait(self.backoff.next())
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
        self.catalog.copy_if_due()
        self.polled_all = False
        complete = True
        units = self.units
        start = self.first_unit % len(units) if units else 0
        for index, madonvi in enumerate(units[start:] + units[:start]):
            if self.stopping.is_set():
                return
            # Should this unit break the connection, the next round starts after it.
            self.first_unit = start + index + 1
            try:
                result = poll_unit(self.client, publisher, self.engine, self.topology, madonvi,
                                   inflight_timeout=timedelta(seconds=self.settings.inflight_timeout),
                                   stopping=self.stopping, limits=self.limits, refusals=self.refusals)
                complete = complete and result.complete
                if result.complete:
                    POLLS.labels(madonvi, "ok").inc()
                    if warning := self.quiet.record(madonvi, result.seen):
                        log.warning(warning, extra={"madonvi": madonvi})
                self.reporter.progress()
            except (*CONNECTION_ERRORS, ChunkRefused):
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
        self.first_unit = start  # a round that went through: the next starts where this one did
        self.polled_all = complete
        if complete:
            self.backoff.reset()
