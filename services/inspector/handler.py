"""The inspector's decision for one stored file: read its PDF facts, commit them, then acknowledge.

Facts are keyed by object key and carry the SHA-256 of the bytes read, so inspecting a file twice writes
the same row (idempotent), and facts about bytes since replaced are told apart from current ones.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy import select
from sqlalchemy.engine import Engine

from services.inspector.pdf_facts import Facts, read_facts, spool
from shared.archive.inspection import FileToInspect, StoredObjectMissing
from shared.archive.reading import ObjectMissing
from shared.archive.tables import PDF_FACTS, TAI_LIEU
from shared.broker.outcome import Delivery, Done
from shared.db.sync_state import insert_for
from shared.errors import DatabaseUnavailable
from shared.storage.objects import ObjectStore

log = logging.getLogger(__name__)


class InspectHandler:
    def __init__(self, engine: Engine, store: ObjectStore, max_bytes: int):
        self.engine = engine
        self.store = store
        self.max_bytes = max_bytes

    def __call__(self, delivery: Delivery) -> Done:
        message = FileToInspect.from_bytes(delivery.body)
        try:
            data, sha256, size = spool(self.store, message.object_key, self.max_bytes)
        except ObjectMissing:
            if not self._row_exists(message.object_key):
                log.info("file %s is no longer in tai_lieu; nothing to inspect", message.object_key,
                         extra={"mahoso": message.mahoso})
                return Done()
            raise StoredObjectMissing(f"{message.object_key}: in tai_lieu, not in the bucket") from None
        with data:
            facts = read_facts(data, sha256, size, self.max_bytes)
        self._write(message, facts)
        if facts.problem:
            log.warning("file %s flagged: %s", message.object_key, facts.problem, extra={"mahoso": message.mahoso})
        else:
            log.info("file %s: %d pages%s%s", message.object_key, facts.pages or 0, ", signed" if facts.signed else "",
                     f", claims PDF/A-{facts.pdfa}" if facts.pdfa else "", extra={"mahoso": message.mahoso})
        return Done()

    def _row_exists(self, key: str) -> bool:
        table = TAI_LIEU
        try:
            with self.engine.connect() as connection:
                return connection.execute(select(table.c.id).where(table.c.object_key == key)).first() is not None
        except sqlalchemy.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"database: {exc.orig or exc}") from None

    def _write(self, message: FileToInspect, facts: Facts) -> None:
        table = PDF_FACTS
        values = {"mahoso": message.mahoso, "sha256": facts.sha256, "is_pdf": facts.is_pdf, "pages": facts.pages,
                  "signed": facts.signed, "pdfa": facts.pdfa, "problem": facts.problem,
                  "inspected_at": datetime.now(UTC)}
        try:
            with self.engine.begin() as connection:
                stmt = insert_for(connection, table).values(object_key=message.object_key, **values)
                connection.execute(stmt.on_conflict_do_update(index_elements=["object_key"], set_=values))
        except sqlalchemy.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"database: {exc.orig or exc}") from None
