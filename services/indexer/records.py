"""Writing dossiers and their files into `ho_so` and `tai_lieu`, idempotently.

A dossier seen again updates its row and replaces its set of files; it never adds a second row. One
transaction covers a whole batch of dossiers, so a batch costs one commit, not one per dossier.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.engine import Connection

from shared.db import sync_state
from shared.db.models import HoSo, TaiLieu
from shared.db.sync_state import insert_for
from shared.messages import DossierStored

ho_so = HoSo.__table__
tai_lieu = TaiLieu.__table__


def write_dossiers(connection: Connection, dossiers: Sequence[DossierStored]) -> None:
    if not dossiers:
        return
    at = datetime.now(UTC)
    rows = [{
        "mahoso": d.mahoso, "madonvi": d.madonvi, "tentochuccanhan": d.tentochuccanhan, "ngaynhan": d.ngaynhan,
        "mathutuc": d.mathutuc, "tenthutuc": d.tenthutuc, "file_count": len(d.files), "state": "indexed",
        "fetched_at": d.fetched_at, "indexed_at": at,
    } for d in dossiers]
    # Statements executed with a list of rows are compiled once and cached (executemany).
    stmt = insert_for(connection, ho_so)
    updated = {name: stmt.excluded[name] for name in rows[0] if name not in ("mahoso", "state")}
    connection.execute(stmt.on_conflict_do_update(index_elements=["mahoso"], set_=updated), rows)

    ids = dict(
        connection.execute(
            select(ho_so.c.mahoso, ho_so.c.id).where(ho_so.c.mahoso.in_([d.mahoso for d in dossiers]))
        ).all()
    )
    files = [
        {
            "ho_so_id": ids[d.mahoso],
            "mahoso": d.mahoso,
            "matailieu": f.matailieu,
            "tentailieu": f.tentailieu,
            "ten_file": f.ten_file,
            "url_file": f.url_file,
            "object_key": f.object_key,
            "size": f.size,
            "sha256": f.sha256,
            "content_type": f.content_type,
            "content_type_mismatch": f.content_type_mismatch,
            "stored_at": f.stored_at,
        }
        for d in dossiers
        for f in {f.object_key: f for f in d.files}.values()
    ]
    # The set of files is the one just stored: rows of files no longer listed go.
    keep = [(row["ho_so_id"], row["object_key"]) for row in files]
    stale = delete(tai_lieu).where(tai_lieu.c.ho_so_id.in_(list(ids.values())))
    if keep:
        stale = stale.where(tuple_(tai_lieu.c.ho_so_id, tai_lieu.c.object_key).not_in(keep))
    connection.execute(stale)
    if files:
        stmt = insert_for(connection, tai_lieu)
        updated = {name: stmt.excluded[name] for name in files[0] if name != "object_key"}
        connection.execute(stmt.on_conflict_do_update(index_elements=["object_key"], set_=updated), files)
    sync_state.record_status(connection, [d.mahoso for d in dossiers], sync_state.INDEXED)
