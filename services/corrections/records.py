"""The `hieu_chinh` table: one row per correction, from request to outcome.

The command writes the row (status `queued`) before it publishes the correction's message; the worker
moves it to `applied` or `refused`, or to `failed` when the message was dead-lettered for another reason
(a replay moves it on again). Every write here is idempotent: doing it twice leaves the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from shared.db.archive_models import HieuChinh
from shared.db.sync_state import insert_for
from shared.messages import CorrectionRequested

hieu_chinh = HieuChinh.__table__  # type: ignore[attr-defined]

QUEUED, APPLIED, REFUSED, FAILED = "queued", "applied", "refused", "failed"


@dataclass(frozen=True)
class CorrectionRow:
    correction_id: str
    status: str
    attempts: int


def record_request(connection: Connection, message: CorrectionRequested) -> None:
    """The row of a correction as asked (nothing happens when it exists already)."""
    stmt = insert_for(connection, hieu_chinh).values(
        correction_id=message.correction_id, action=message.action, mahoso=message.mahoso, madonvi=message.madonvi,
        matailieu=message.matailieu, ten_file=message.ten_file, object_key=message.object_key, size=message.size,
        sha256=message.sha256, requested_by=message.requested_by, requested_at=message.requested_at, status=QUEUED,
        attempts=0,
    )
    connection.execute(stmt.on_conflict_do_nothing(index_elements=["correction_id"]))


def start_attempt(engine: Engine, message: CorrectionRequested) -> CorrectionRow:
    """Counts one more attempt (adding the row if the message was published without one) and reads it back."""
    with engine.begin() as connection:
        record_request(connection, message)
        connection.execute(update(hieu_chinh).where(hieu_chinh.c.correction_id == message.correction_id)
                           .values(attempts=hieu_chinh.c.attempts + 1))
        row = connection.execute(select(hieu_chinh.c.status, hieu_chinh.c.attempts)
                                 .where(hieu_chinh.c.correction_id == message.correction_id)).one()
    return CorrectionRow(message.correction_id, row.status, row.attempts)


def finish(engine: Engine, correction_id: str, status: str, outcome: str, url_file: str | None = None) -> None:
    """The correction's outcome; an applied correction stays applied whatever a late retry says."""
    values: dict = {"status": status, "outcome": outcome[:2000], "finished_at": datetime.now(UTC)}
    if url_file is not None:
        values["url_file"] = url_file
    with engine.begin() as connection:
        connection.execute(update(hieu_chinh).where(hieu_chinh.c.correction_id == correction_id,
                                                    hieu_chinh.c.status != APPLIED).values(**values))


def note_error(engine: Engine, correction_id: str, error: str) -> None:
    """The last error of a correction still being tried (its status stays as it is)."""
    with engine.begin() as connection:
        connection.execute(update(hieu_chinh).where(hieu_chinh.c.correction_id == correction_id,
                                                    hieu_chinh.c.status != APPLIED)
                           .values(outcome=error[:2000]))
