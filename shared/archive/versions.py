"""A dossier's versions and corrections, from what the database holds: the one query behind `dongbo trace`,
`dongbo file history` and the web dossier page.

A version is a `ho_so_version` row (one per distinct content ever indexed, ordered by when it was seen).
Its files are the `tai_lieu` rows of the object keys it listed: a key is never rewritten, so a row names
the same bytes in every version that lists it. A file is *current* while no newer version dropped it
(`superseded_at IS NULL`); otherwise its row says when and why it was superseded, and its object stays
readable under its own key.

A correction *led to* a version when the one-stop system took it (`hieu_chinh.status = applied` with the
call actually made) and that version is the first one seen after it. A correction found already in place,
refused, failed or still queued led to none; every correction is listed in `corrections` all the same.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from shared.archive.tables import HIEU_CHINH, HO_SO, HO_SO_VERSION, TAI_LIEU

# What the corrections worker records as the outcome of a call it made (services/corrections/records.py);
# "already in place …" means nothing was sent, so no version followed from it.
SENT = "applied"
FILE_FIELDS = ("id", "matailieu", "tentailieu", "ten_file", "url_file", "object_key", "size", "sha256",
               "content_type", "stored_at", "reported_at", "superseded_at", "superseded_reason")
CORRECTION_FIELDS = ("correction_id", "action", "matailieu", "ten_file", "object_key", "size", "sha256",
                     "requested_by", "requested_at", "status", "attempts", "outcome", "url_file", "finished_at")


def load_history(connection: Connection, mahoso: str) -> dict[str, Any] | None:
    """The dossier's versions (oldest first, each with its files and the corrections that led to it), every
    file it ever had and every correction asked for it; None when the archive does not hold the dossier."""
    dossier = connection.execute(select(HO_SO).where(HO_SO.c.mahoso == mahoso)).mappings().first()
    if dossier is None:
        return None
    versions = connection.execute(select(HO_SO_VERSION).where(HO_SO_VERSION.c.mahoso == mahoso)
                                  .order_by(HO_SO_VERSION.c.fetched_at, HO_SO_VERSION.c.id)).mappings().all()
    rows = connection.execute(select(TAI_LIEU).where(TAI_LIEU.c.mahoso == mahoso)
                              .order_by(TAI_LIEU.c.stored_at, TAI_LIEU.c.id)).mappings().all()
    asked = connection.execute(select(HIEU_CHINH).where(HIEU_CHINH.c.mahoso == mahoso)
                               .order_by(HIEU_CHINH.c.requested_at, HIEU_CHINH.c.id)).mappings().all()
    files = [_file(row) for row in rows]
    by_key = {f["object_key"]: f for f in files}
    corrections = [{name: c[name] for name in CORRECTION_FIELDS} for c in asked]
    listed = []
    for number, version in enumerate(versions, start=1):
        keys = json.loads(version["object_keys"] or "[]")
        listed.append({
            "number": number, "version_hash": version["version_hash"], "source_hash": version["source_hash"],
            "fetched_at": version["fetched_at"], "recorded_at": version["recorded_at"],
            "file_count": version["file_count"], "current": number == len(versions), "object_keys": keys,
            # A key without a row would be a fault of the archive: shown, not hidden.
            "files": [by_key.get(key) or {"object_key": key, "missing": True} for key in keys],
            "corrections": [],
        })
    for correction in corrections:
        correction["version"] = None
        if correction["status"] != SENT or correction["outcome"] != SENT or correction["finished_at"] is None:
            continue
        done = _aware(correction["finished_at"])
        later = next((v for v in listed if _after(_seen(v), done)), None)
        if later is not None:
            later["corrections"].append(correction)
            correction["version"] = later["number"]
    return {"mahoso": mahoso, "madonvi": dossier["madonvi"], "state": dossier["state"],
            "source_hash": dossier["source_hash"], "versions": listed, "files": files, "corrections": corrections}


def history(engine: Engine, mahoso: str) -> dict[str, Any] | None:
    with engine.connect() as connection:
        return load_history(connection, mahoso)


def _file(row) -> dict[str, Any]:
    found = {name: row[name] for name in FILE_FIELDS}
    found["current"] = row["superseded_at"] is None
    return found


def _seen(version: dict[str, Any]) -> datetime | None:
    return _aware(version["fetched_at"] or version["recorded_at"])


def _after(seen: datetime | None, done: datetime | None) -> bool:
    return seen is not None and done is not None and seen >= done


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite hands back naive UTC
        return value.replace(tzinfo=UTC)
    return value
