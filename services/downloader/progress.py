"""Recording dossiers as stored, many per transaction, off the transfer threads.

The stored state is informational (`dongbo status` shows it; the indexer's commit is what counts), so
the transfer threads only note a dossier here, and a background thread writes what was noted every
half second in one transaction. A write that arrives after the indexer's does not move a dossier back.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time

from sqlalchemy.engine import Engine

from shared.db import sync_state

log = logging.getLogger(__name__)


class StoredRecorder:
    def __init__(self, engine: Engine, every: float = 0.5):
        self.engine = engine
        self.every = every
        self.pending: list[str] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="stored-recorder", daemon=True)
        self.thread.start()
        atexit.register(self.flush)  # what a stopping process noted last is written too

    def add(self, mahoso: str) -> None:
        with self.lock:
            self.pending.append(mahoso)

    def flush(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            with self.engine.begin() as connection:
                sync_state.informational(connection)
                sync_state.record_status(connection, batch, sync_state.STORED)
        except Exception as exc:  # informational: never let it stop the transfers
            log.warning("could not record %d dossiers as stored: %s", len(batch), exc)

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            self.flush()
