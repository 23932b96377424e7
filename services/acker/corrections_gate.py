"""Which dossiers must not be marked synced because a correction reached the one-stop system after the
version at hand was fetched.

The one-stop mark (`capnhattrangthaidongbo`) names a dossier, not a version. A correction applied after
the fetcher saw the dossier changes it there and clears its mark; marking the older version afterwards
would set the mark again, and the corrected dossier would never be offered to the archive. Such a version
is acknowledged without marking; the one-stop system offers the corrected dossier again and that version
is marked.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from shared.db.archive_models import HieuChinh

hieu_chinh = HieuChinh.__table__  # type: ignore[attr-defined]


def corrected_since(connection: Connection, fetched: dict[str, datetime]) -> set[str]:
    """The dossiers among `fetched` (mahoso → when that version was fetched) with a correction applied later."""
    if not fetched:
        return set()
    rows = connection.execute(
        select(hieu_chinh.c.mahoso, func.max(hieu_chinh.c.finished_at))
        .where(hieu_chinh.c.mahoso.in_(list(fetched)), hieu_chinh.c.status == "applied")
        .group_by(hieu_chinh.c.mahoso)
    )
    return {mahoso for mahoso, at in rows if at is not None and _utc(at) > _utc(fetched[mahoso])}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=value.tzinfo or UTC)  # SQLite hands back naive UTC datetimes
