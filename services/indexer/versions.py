"""One row in `ho_so_version` per version of a dossier the indexer wrote.

A version is named by its `version_hash`: the fingerprint of the content the one-stop system sent
(`source_hash`) together with every stored file's key and SHA-256, so bytes changed under an unchanged
listing are a new version too. The same dossier indexed again — a re-sync, a backfill, a redelivery —
adds no row. The row lists the object
keys of that version, so "which files did the dossier have then?" is one lookup, whatever happened since.
"""

from __future__ import annotations

import hashlib
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
            "version_hash": version_hash(d),
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
        stmt = insert_for(connection, ho_so_version).on_conflict_do_nothing(index_elements=["mahoso", "version_hash"])
        connection.execute(stmt, rows)


def version_hash(dossier: DossierStored) -> str:
    sha = hashlib.sha256(dossier.source_hash.encode("ascii", "replace"))
    for key, digest in sorted({(f.object_key, f.sha256) for f in dossier.files}):
        sha.update(b"\x00" + key.encode("utf-8", "surrogatepass") + b"\x00" + digest.encode("ascii"))
    return sha.hexdigest()
