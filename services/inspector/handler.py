"""The inspector's decision for one dossier's stored files: read their PDF facts, commit them in one
transaction, then acknowledge.

Facts are keyed by object key and carry the SHA-256 of the bytes read, so inspecting a file twice writes
the same row (idempotent), and facts about bytes since replaced are told apart from current ones. A file
whose object is missing does not cost its neighbours their facts: theirs are committed, then the message
is parked as `object-missing` naming it (a replay inspects all of them again, harmlessly).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy.exc
from sqlalchemy import select
from sqlalchemy.engine import Engine

from services.inspector.pdf_facts import Facts, read_facts, spool
from shared.archive.inspection import FileRef, FilesToInspect, StoredObjectMissing
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
        message = FilesToInspect.from_bytes(delivery.body)
        found: list[tuple[FileRef, Facts]] = []
        missing: list[str] = []
        for ref in message.files:
            try:
                data, sha256, size = spool(self.store, ref.object_key, self.max_bytes)
            except ObjectMissing:
                if self._row_exists(ref.object_key):
                    missing.append(ref.object_key)
                else:
                    log.info("file %s is no longer in tai_lieu; nothing to inspect", ref.object_key,
                             extra={"mahoso": message.mahoso})
                continue
            with data:
                found.append((ref, read_facts(data, sha256, size, self.max_bytes)))
        self._write(message.mahoso, found)
        for ref, facts in found:
            if facts.problem:
                log.warning("file %s flagged: %s", ref.object_key, facts.problem, extra={"mahoso": message.mahoso})
            else:
                log.debug("file %s: %d pages%s%s", ref.object_key, facts.pages or 0, ", signed" if facts.signed else "",
                          f", claims PDF/A-{facts.pdfa}" if facts.pdfa else "", extra={"mahoso": message.mahoso})
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise StoredObjectMissing(f"in tai_lieu, not in the bucket: {', '.join(missing[:3])}{more}")
        log.info("dossier %s: %d files inspected", message.mahoso, len(found), extra={"mahoso": message.mahoso})
        return Done()

    def _row_exists(self, key: str) -> bool:
        table = TAI_LIEU
        try:
            with self.engine.connect() as connection:
                return connection.execute(select(table.c.id).where(table.c.object_key == key)).first() is not None
        except sqlalchemy.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"database: {exc.orig or exc}") from None

    def _write(self, mahoso: str, found: list[tuple[FileRef, Facts]]) -> None:
        """The facts of a dossier's files, in one statement."""
        if not found:
            return
        now = datetime.now(UTC)
        rows = [{"object_key": ref.object_key, "mahoso": mahoso, "sha256": facts.sha256, "is_pdf": facts.is_pdf,
                 "pages": facts.pages, "signed": facts.signed, "pdfa": facts.pdfa, "problem": facts.problem,
                 "inspected_at": now} for ref, facts in found]
        try:
            with self.engine.begin() as connection:
                stmt = insert_for(connection, PDF_FACTS)
                updated = {name: stmt.excluded[name] for name in rows[0] if name != "object_key"}
                connection.execute(stmt.on_conflict_do_update(index_elements=["object_key"], set_=updated), rows)
        except sqlalchemy.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"database: {exc.orig or exc}") from None
