"""Reading and writing the per-dossier sync state (`sync_state`) and idempotent upserts.

Every write here is an upsert keyed on `mahoso`, so running it twice leaves the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shared.db.models import SyncState

QUEUED, STORED, INDEXED, SYNCED, FAILED = "queued", "stored", "indexed", "synced", "failed"
STATUSES = (QUEUED, STORED, INDEXED, SYNCED, FAILED)

table = SyncState.__table__  # type: ignore[attr-defined]


def now() -> datetime:
    return datetime.now(UTC)


def insert_for(connection: Connection, target):
    """An INSERT that supports ON CONFLICT on both PostgreSQL and SQLite."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(target)


def informational(connection: Connection) -> None:
    """This transaction records progress that is not relied on: its commit need not wait for the disk.

    A crash of the database server may lose the last such writes (never corrupt them); what counts is
    written by the stage that owns it, with a normal commit. On PostgreSQL only.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")


def load(connection: Connection, mahosos: Sequence[str]) -> dict[str, dict]:
    """The current state of these dossiers, by `mahoso` (missing ones are new)."""
    if not mahosos:
        return {}
    rows = connection.execute(select(table).where(table.c.mahoso.in_(list(mahosos)))).mappings()
    return {row["mahoso"]: dict(row) for row in rows}


def record_published(
    connection: Connection, dossiers: Iterable[tuple[str, str, str]], handed_at: datetime | None = None
) -> None:
    """The fetcher handed these (mahoso, madonvi, source_hash) to the pipeline, from `handed_at` on.

    Recorded once the broker has confirmed them, by which time a quick stage may already have written a
    dossier's state (a file refused at once parks it within milliseconds). A state written since
    `handed_at` is that stage's word on this very delivery and stays.
    """
    at = now()
    handed_at = handed_at or at
    rows = [
        {"mahoso": m, "madonvi": u, "status": QUEUED, "source_hash": h, "publish_count": 1, "attempts": 0,
         "first_seen_at": handed_at, "published_at": handed_at, "updated_at": at}
        for m, u, h in dossiers
    ]
    if not rows:
        return
    # Executed with a list of rows (executemany), so the statement is compiled once and cached, not
    # built anew with thousands of parameters for every chunk.
    stmt = insert_for(connection, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["mahoso"],
        set_={
            # A dossier already synced that comes back is marked again, but stays counted as synced
            # until the acker confirms once more.
            "status": case((table.c.status == SYNCED, SYNCED),
                           (table.c.updated_at >= stmt.excluded.published_at, table.c.status), else_=QUEUED),
            "source_hash": stmt.excluded.source_hash,
            "publish_count": table.c.publish_count + 1,
            "published_at": stmt.excluded.published_at,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    connection.execute(stmt, rows)


def record_failed_input(
    connection: Connection, mahoso: str, madonvi: str, source_hash: str, reason: str, error: str
) -> None:
    """The fetcher could not accept this dossier as sent (it went to the dead-letter queue)."""
    at = now()
    stmt = insert_for(connection, table).values(
        mahoso=mahoso,
        madonvi=madonvi,
        status=FAILED,
        source_hash=source_hash,
        publish_count=0,
        attempts=1,
        last_reason=reason,
        last_error=error,
        last_error_at=at,
        first_seen_at=at,
        updated_at=at,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["mahoso"],
        set_={
            "status": FAILED,
            "source_hash": source_hash,
            "attempts": table.c.attempts + 1,
            "last_reason": reason,
            "last_error": error,
            "last_error_at": at,
            "updated_at": at,
        },
    )
    connection.execute(stmt)


# The states a dossier may move to each state from. A dossier only moves forward (a late write of an
# earlier stage never undoes a later one); a new version of it starts again at queued (record_published).
MOVES_FROM = {
    STORED: (QUEUED, FAILED),
    INDEXED: (QUEUED, STORED, FAILED, INDEXED),
    SYNCED: STATUSES,
}


def record_status(connection: Connection, mahosos: Sequence[str], status: str) -> None:
    """Moves dossiers forward to `status`."""
    if not mahosos:
        return
    at = now()
    values = {"status": status, "updated_at": at}
    if status == SYNCED:
        values["synced_at"] = at
    stmt = update(table).where(table.c.mahoso.in_(list(mahosos)))
    if status != SYNCED:
        stmt = stmt.where(table.c.status.in_(MOVES_FROM[status]))
    connection.execute(stmt.values(**values))


def record_failure(connection: Connection, mahoso: str, madonvi: str, reason: str, error: str, final: bool) -> None:
    """A stage failed on this dossier: a retry is coming (`final=False`) or it was dead-lettered."""
    at = now()
    values = {
        "attempts": table.c.attempts + 1,
        "last_reason": reason,
        "last_error": error,
        "last_error_at": at,
        "updated_at": at,
    }
    if final:
        values["status"] = FAILED
    result = connection.execute(update(table).where(table.c.mahoso == mahoso).values(**values))
    if result.rowcount == 0:  # a message replayed or published by hand: start its record
        record_failed_input(connection, mahoso, madonvi, "", reason, error)
        if not final:
            connection.execute(update(table).where(table.c.mahoso == mahoso).values(status=QUEUED))


def counts_by_unit(connection: Connection) -> dict[str, dict[str, int]]:
    rows = connection.execute(
        select(table.c.madonvi, table.c.status, func.count()).group_by(table.c.madonvi, table.c.status)
    )
    result: dict[str, dict[str, int]] = {}
    for madonvi, status, count in rows:
        result.setdefault(madonvi, {s: 0 for s in STATUSES})[status] = count
    return result
