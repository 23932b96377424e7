"""Reporting each stored file of a dossier synced (`capnhattrangthaidongbofile`), before the dossier's mark.

The acker sees a dossier only after its indexer committed it, and the indexer only after the downloader
stored and verified every file: a `tai_lieu` row is a durable, verified object. The files the current
version lists and that were never reported are sent in batches; what was reported is recorded in
`tai_lieu.reported_at` in one transaction for the dossiers of a call (also when a later one failed), so a
retry sends only what is left (a repeat is harmless anyway: the one-stop system keeps a file marked).

The one-stop system answers 404 for a whole batch when one of its files is unknown there (nothing is
marked then), so a refused batch is sent again one file at a time: the unknown file is logged and left
unreported, and the others are marked. A fault that may heal (5xx, timeout) fails the dossier's message,
which is retried whole, before the dossier is marked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from shared.db.models import TaiLieu
from shared.errors import MarkSyncedRejected, OneStopRefused
from shared.onestop import OneStopClient

log = logging.getLogger(__name__)

tai_lieu = TaiLieu.__table__  # type: ignore[attr-defined]
REFUSED = (MarkSyncedRejected, OneStopRefused)  # the answer named the request wrong (a 404, a 400)


class FileReporter:
    def __init__(self, client: OneStopClient, engine: Engine, batch_size: int = 50):
        self.client = client
        self.engine = engine
        self.batch_size = batch_size

    def report(self, madonvi: str, mahosos: Sequence[str]) -> int:
        """Reports every unreported current file of these dossiers; returns how many were reported."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(tai_lieu.c.id, tai_lieu.c.mahoso, tai_lieu.c.matailieu, tai_lieu.c.url_file)
                .where(tai_lieu.c.mahoso.in_(list(mahosos)), tai_lieu.c.superseded_at.is_(None),
                       tai_lieu.c.reported_at.is_(None))
                .order_by(tai_lieu.c.id)
            ).all()
        pending: dict[str, list[tuple[int, str, str]]] = {}
        for row_id, mahoso, matailieu, url_file in rows:
            pending.setdefault(mahoso, []).append((row_id, matailieu, url_file))
        reported: list[int] = []
        try:
            for mahoso, files in pending.items():
                for start in range(0, len(files), self.batch_size):
                    reported += self._send(madonvi, mahoso, files[start:start + self.batch_size])
        finally:
            # One transaction for the call, not one per dossier (that was a third of the acker's time).
            self._record(reported)
        return len(reported)

    def _send(self, madonvi: str, mahoso: str, batch: list[tuple[int, str, str]]) -> list[int]:
        """The row ids of the files the one-stop system took."""
        try:
            self.client.mark_files_synced(madonvi, mahoso, [(matailieu, url) for _, matailieu, url in batch])
            return [row_id for row_id, _, _ in batch]
        except REFUSED as exc:
            if len(batch) == 1:
                log.warning("dossier %s: file %s not reported: %s", mahoso, batch[0][1], exc,
                            extra={"mahoso": mahoso, "madonvi": madonvi})
                return []
        # One file the one-stop system does not know refuses the whole batch: send each alone.
        return [row_id for item in batch for row_id in self._send(madonvi, mahoso, [item])]

    def _record(self, row_ids: list[int]) -> None:
        if not row_ids:
            return
        with self.engine.begin() as connection:
            connection.execute(update(tai_lieu).where(tai_lieu.c.id.in_(row_ids), tai_lieu.c.reported_at.is_(None))
                               .values(reported_at=datetime.now(UTC)))
