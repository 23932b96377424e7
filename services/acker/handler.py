"""The acker's decision for a batch: mark its dossiers synced on the one-stop system, unit by unit,
then record the synced time. A unit whose call fails has nothing recorded and is retried whole.

Only the version the archive holds is marked: a message about a version that a newer one has replaced in
`ho_so` since it was indexed is acknowledged without marking (the newer version's own message marks it).
A message without a version (queued before versions were carried) is marked as before.

Files are reported one dossier per call (`capnhattrangthaidongbofile` names one `mahoso`), so a batch of a
hundred dossiers is a hundred round trips to the one-stop system. They go out several at a time
(`DONGBO_REPORT_CONCURRENCY`, 8): one after another, the acker was the slowest stage of a first sync, and
over a WAN each round trip costs tens of milliseconds (at 4 at a time, a WAN-like link of 30 ms left the
acker finishing seconds after the last dossier was indexed). Every report of a unit's batch has finished
before its dossiers are marked.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from services.acker.corrections_gate import corrected_since
from services.acker.file_reports import FileReporter
from shared import observability
from shared.broker.outcome import Delivery, Done
from shared.db import sync_state
from shared.db.dossier_locks import held_for_marking
from shared.db.models import HoSo
from shared.errors import CorrectionInProgress, DatabaseUnavailable
from shared.messages import DossierIndexed
from shared.onestop import OneStopClient

log = logging.getLogger(__name__)

ho_so = HoSo.__table__  # type: ignore[attr-defined]
# The default number of report calls in flight at once; the one-stop client's pool (transport.POOL_SIZE)
# bounds the setting. Each call holds a database connection only to read its slice and to record it.
REPORT_THREADS = 8


def _same_time(a: datetime, b: datetime) -> bool:
    # SQLite hands back naive UTC datetimes.
    return a.replace(tzinfo=a.tzinfo or UTC) == b.replace(tzinfo=b.tzinfo or UTC)


class AckHandler:
    def __init__(self, client: OneStopClient, engine: Engine, batch_size: int, file_batch_size: int = 50,
                 report_threads: int = REPORT_THREADS):
        self.client = client
        self.engine = engine
        self.batch_size = batch_size
        self.files = FileReporter(client, engine, file_batch_size)
        self.report_threads = report_threads
        self.reporters = ThreadPoolExecutor(max_workers=report_threads, thread_name_prefix="acker-files")

    def __call__(self, deliveries: list[Delivery]) -> list[Done | BaseException]:
        results: list[Done | BaseException | None] = [None] * len(deliveries)
        by_unit: dict[str, list[tuple[int, DossierIndexed]]] = defaultdict(list)
        for i, delivery in enumerate(deliveries):
            try:
                message = DossierIndexed.from_bytes(delivery.body)
                by_unit[message.madonvi].append((i, message))
            except Exception as exc:
                results[i] = exc
        try:
            # From the corrections check to the mark, no correction of these dossiers may reach the one-stop
            # system (shared/db/dossier_locks.py); one being applied now is retried after it.
            with held_for_marking(self.engine, (m.mahoso for items in by_unit.values() for _, m in items)) as busy:
                by_unit = self._not_busy(by_unit, busy, results)
                by_unit = self._current(by_unit, results)
                self._mark(by_unit, results)
        except sqlalchemy.exc.OperationalError as exc:
            error = DatabaseUnavailable(f"database: {exc.orig or exc}")
            return [error if result is None else result for result in results]
        return [Done() if result is None else result for result in results]

    def _mark(self, by_unit: dict[str, list[tuple[int, DossierIndexed]]],
              results: list[Done | BaseException | None]) -> None:
        for madonvi, items in by_unit.items():
            if not items:
                continue
            mahosos = list(dict.fromkeys(message.mahoso for _, message in items))
            try:
                # Each file first, then the dossier: the dossier's mark says all of it is here.
                self._report_files(madonvi, mahosos)
                self.client.mark_synced(madonvi, mahosos, batch_size=self.batch_size)
                self._record_synced(mahosos)
            except Exception as exc:
                log.warning("unit %s: marking %d dossiers synced failed: %s", madonvi, len(mahosos), exc,
                            extra={"madonvi": madonvi})
                for i, _ in items:
                    results[i] = exc
                continue
            log.info("unit %s: %d dossiers marked synced", madonvi, len(mahosos), extra={"madonvi": madonvi})
            observability.DOSSIERS.labels("acker").inc(len(mahosos))
            for i, _ in items:
                results[i] = Done()

    @staticmethod
    def _not_busy(by_unit: dict[str, list[tuple[int, DossierIndexed]]], busy: set[str],
                  results: list[Done | BaseException | None]) -> dict[str, list[tuple[int, DossierIndexed]]]:
        if not busy:
            return by_unit
        kept: dict[str, list[tuple[int, DossierIndexed]]] = {}
        for madonvi, items in by_unit.items():
            for i, message in items:
                if message.mahoso in busy:
                    results[i] = CorrectionInProgress(f"dossier {message.mahoso}: a correction is being applied "
                                                      "on the one-stop system; marking it waits for the outcome")
                else:
                    kept.setdefault(madonvi, []).append((i, message))
        return kept

    def _report_files(self, madonvi: str, mahosos: list[str]) -> None:
        """Reports the files of these dossiers, a slice per thread; raises the first failure once all ended.

        Waiting for every slice, also after a failure, keeps reports from running on behind a retry.
        """
        size = -(-len(mahosos) // self.report_threads)
        futures = [self.reporters.submit(self.files.report, madonvi, mahosos[start:start + size])
                   for start in range(0, len(mahosos), size)]
        wait(futures)
        for future in futures:
            future.result()

    def _current(self, by_unit: dict[str, list[tuple[int, DossierIndexed]]],
                 results: list[Done | BaseException | None]) -> dict[str, list[tuple[int, DossierIndexed]]]:
        """The messages about the version `ho_so` holds; the others are settled as done, unmarked."""
        mahosos = [message.mahoso for items in by_unit.values() for _, message in items]
        with self.engine.connect() as connection:
            rows = connection.execute(select(ho_so.c.mahoso, ho_so.c.fetched_at).where(ho_so.c.mahoso.in_(mahosos)))
            held: dict[str, datetime | None] = {mahoso: at for mahoso, at in rows}
            corrected = corrected_since(connection, {m.mahoso: m.fetched_at for items in by_unit.values()
                                                     for _, m in items if m.fetched_at is not None})
        current: dict[str, list[tuple[int, DossierIndexed]]] = {}
        for madonvi, items in by_unit.items():
            for i, message in items:
                version = held.get(message.mahoso)
                if message.mahoso in corrected:
                    log.info("dossier %s: a correction was applied after the version seen at %s; not marked",
                             message.mahoso, message.fetched_at, extra={"mahoso": message.mahoso, "madonvi": madonvi})
                    results[i] = Done()
                elif message.fetched_at is None or version is None or _same_time(message.fetched_at, version):
                    current.setdefault(madonvi, []).append((i, message))
                else:
                    log.info("dossier %s: version seen at %s was replaced by the one seen at %s; not marked",
                             message.mahoso, message.fetched_at, version,
                             extra={"mahoso": message.mahoso, "madonvi": madonvi})
                    results[i] = Done()
        return current

    def _record_synced(self, mahosos: list[str]) -> None:
        at = datetime.now(UTC)
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(ho_so).where(ho_so.c.mahoso.in_(mahosos)).values(state="synced", synced_at=at)
                )
                sync_state.record_status(connection, mahosos, sync_state.SYNCED)
        except sqlalchemy.exc.OperationalError as exc:
            # The one-stop system has them already; the retry marks them again (harmless) and records.
            raise DatabaseUnavailable(f"database: {exc.orig or exc}") from None
