"""One row in `ho_so_version` per version of a dossier the indexer wrote.

A version is named by its `source_hash` (the fingerprint of the content the one-stop system sent): the
same dossier indexed again — a re-sync, a backfill, a redelivery — adds no row. The row lists the object
keys of that version, so "which files did the dossier have then?" is one lookup, whatever happened since.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Connection

from shared.db.archive_models import HoSoVersion
from shared.db.sync_state import insert_for
from shared.messages import DossierStored

ho_so_version = HoSoVersion.__table__  # type: ignore[attr-defined]


def record_versions(connection: Connection, dossiers: Sequence[DossierStored], at: datetime) -> None:
    """Adds the versions not recorded yet; a message without a version (an older producer) records none."""
    rows = [
        {
            "mahoso": d.mahoso,
            "source_hash": d.source_hash,
            "fetched_at": d.fetched_at,
            "recorded_at": at,
            "file_count": len({f.object_key for f in d.files}),
            "object_keys": json.dumps(sorted({f.object_key for f in d.files}), ensure_ascii=False),
        }
        for d in dossiers
        if d.source_hash
    ]
    if rows:
        stmt = insert_for(connection, ho_so_version).on_conflict_do_nothing(index_elements=["mahoso", "source_hash"])
        connection.execute(stmt, rows)
