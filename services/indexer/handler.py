"""The indexer's decision for a batch: commit every dossier's record, then pass each to the acker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy.engine import Engine

from services.indexer.records import write_dossiers
from shared import observability
from shared.broker.outcome import Delivery, Done
from shared.broker.topology import ACK
from shared.errors import DatabaseUnavailable
from shared.messages import DossierIndexed, DossierStored

log = logging.getLogger(__name__)


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
        # A dossier twice in one batch is written once, from its last message.
        latest = {dossier.mahoso: dossier for _, dossier in parsed}
        try:
            self._commit(list(latest.values()))
        except DatabaseUnavailable as exc:
            for i, _ in parsed:
                results[i] = exc
            return results
        except Exception:
            # One bad dossier must not fail its neighbours: commit each alone to find it.
            for i, dossier in parsed:
                try:
                    self._commit([dossier])
                except Exception as exc:
                    results[i] = exc
        for i, dossier in parsed:
            if results[i] is None:
                results[i] = Done([(ACK, DossierIndexed(mahoso=dossier.mahoso, madonvi=dossier.madonvi))])
                if dossier.fetched_at:
                    lag = (datetime.now(UTC) - dossier.fetched_at).total_seconds()
                    observability.QUEUE_LAG.labels("indexer").observe(max(lag, 0.0))
        observability.DOSSIERS.labels("indexer").inc(len(latest))
        return results

    def _commit(self, dossiers: list[DossierStored]) -> None:
        try:
            with self.engine.begin() as connection:
                write_dossiers(connection, dossiers)
        except sqlalchemy.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"database: {exc.orig or exc}") from None
        for dossier in dossiers:
            log.info("dossier %s indexed with %d files", dossier.mahoso, len(dossier.files),
                     extra={"mahoso": dossier.mahoso, "madonvi": dossier.madonvi})
