"""The indexer's decision for a batch: commit every dossier's record, then pass each to the acker and each
of its files to the inspector (page counts, off the critical path).

Only the version that was written goes on to the acker: a delivery of an older version (a retry or
redelivery that lost the race to a newer one) is acknowledged and goes no further, so the acker never marks
a version the archive does not hold. A value the database can never store (longer than its column, a NUL
in text) is a permanent error of that dossier alone (`unstorable-value`): parked at once, not retried.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy.engine import Engine

from services.indexer.records import write_dossiers
from shared import observability
from shared.archive.inspection import inspection_messages
from shared.broker.outcome import Delivery, Done
from shared.broker.topology import ACK
from shared.errors import DatabaseUnavailable, UnstorableValue
from shared.messages import DossierIndexed, DossierStored

log = logging.getLogger(__name__)


def _newer(a: DossierStored, b: DossierStored) -> bool:
    """Whether `a` is a newer version than `b` (a version without a time counts as the oldest)."""
    if a.fetched_at is None:
        return False
    return b.fetched_at is None or a.fetched_at >= b.fetched_at


class IndexHandler:
    def __init__(self, engine: Engine):
        self.engine = engine

    def __call__(self, deliveries: list[Delivery]) -> list[Done | BaseException]:
        results: list[Done | BaseException | None] = [None] * len(deliveries)
        parsed: list[tuple[int, DossierStored]] = []
        for i, delivery in enumerate(deliveries):
            try:
                parsed.append((i, DossierStored.from_bytes(delivery.body)))
            except Exception as exc:
                results[i] = exc
        # A dossier twice in one batch is written once, from its newest version.
        latest: dict[str, DossierStored] = {}
        for _, dossier in parsed:
            if dossier.mahoso not in latest or _newer(dossier, latest[dossier.mahoso]):
                latest[dossier.mahoso] = dossier
        written: set[str] = set()
        try:
            written = self._commit(list(latest.values()))
        except DatabaseUnavailable as exc:
            for i, _ in parsed:
                results[i] = exc
            return _settled(results)
        except Exception:
            # One bad dossier must not fail its neighbours: commit each alone to find it.
            for i, dossier in parsed:
                if latest[dossier.mahoso] is not dossier:
                    continue
                try:
                    written |= self._commit([dossier])
                except Exception as exc:
                    results[i] = exc
        for i, dossier in parsed:
            if results[i] is not None:
                continue
            failures = [results[j] for j, d in parsed
                        if d is latest[dossier.mahoso] and isinstance(results[j], BaseException)]
            if failures:  # the version it lost to could not be written: its retry decides for both
                results[i] = failures[0]
            elif dossier is latest[dossier.mahoso] and dossier.mahoso in written:
                # The inspections go in the same confirmed step; the acker never waits for them.
                results[i] = Done([(ACK, DossierIndexed(mahoso=dossier.mahoso, madonvi=dossier.madonvi,
                                                        fetched_at=dossier.fetched_at,
                                                        source_hash=dossier.source_hash)),
                                   *inspection_messages(dossier)])
                if dossier.fetched_at:
                    lag = (datetime.now(UTC) - dossier.fetched_at).total_seconds()
                    observability.QUEUE_LAG.labels("indexer").observe(max(lag, 0.0))
            else:
                log.info("dossier %s: version seen at %s is older than the one archived; not indexed",
                         dossier.mahoso, dossier.fetched_at, extra={"mahoso": dossier.mahoso,
                                                                    "madonvi": dossier.madonvi})
                results[i] = Done()
        observability.DOSSIERS.labels("indexer").inc(len(written))
        return _settled(results)

    def _commit(self, dossiers: list[DossierStored]) -> set[str]:
        try:
            with self.engine.begin() as connection:
                written = write_dossiers(connection, dossiers)
        except sqlalchemy.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"database: {exc.orig or exc}") from None
        except sqlalchemy.exc.DataError as exc:
            # The value, not the database, is at fault: no retry can change it.
            detail = str(exc.orig or exc).strip().splitlines()[0]
            raise UnstorableValue(f"the database cannot store a value of this dossier: {detail}") from None
        # One INFO line per batch; the line per dossier is DEBUG (`dongbo trace` shows a dossier's every step).
        for dossier in dossiers:
            if dossier.mahoso in written:
                log.debug("dossier %s indexed with %d files", dossier.mahoso, len(dossier.files),
                          extra={"mahoso": dossier.mahoso, "madonvi": dossier.madonvi})
        if written:
            log.info("%d dossiers indexed with %d files", len(written),
                     sum(len(d.files) for d in dossiers if d.mahoso in written))
        return written


def _settled(results: list[Done | BaseException | None]) -> list[Done | BaseException]:
    return [RuntimeError("no result") if result is None else result for result in results]
