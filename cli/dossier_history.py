"""What `dongbo file history MAHOSO` shows: a dossier's versions, every file it ever had, its corrections.

The current view of a dossier is `ho_so` and its `tai_lieu` rows without `superseded_at`; the history is
`ho_so_version` (one row per version, with the object keys it listed), the superseded `tai_lieu` rows
(their objects stay readable under their own keys) and `hieu_chinh`.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from cli.common import table
from shared.db.archive_models import HieuChinh, HoSoVersion
from shared.db.models import HoSo, TaiLieu

ho_so = HoSo.__table__  # type: ignore[attr-defined]
tai_lieu = TaiLieu.__table__  # type: ignore[attr-defined]
ho_so_version = HoSoVersion.__table__  # type: ignore[attr-defined]
hieu_chinh = HieuChinh.__table__  # type: ignore[attr-defined]


def history(engine: Engine, mahoso: str) -> dict[str, Any] | None:
    with engine.connect() as connection:
        dossier = connection.execute(select(ho_so).where(ho_so.c.mahoso == mahoso)).mappings().first()
        if dossier is None:
            return None
        versions = connection.execute(select(ho_so_version).where(ho_so_version.c.mahoso == mahoso)
                                      .order_by(ho_so_version.c.fetched_at, ho_so_version.c.id)).mappings().all()
        files = connection.execute(select(tai_lieu).where(tai_lieu.c.mahoso == mahoso)
                                   .order_by(tai_lieu.c.stored_at, tai_lieu.c.id)).mappings().all()
        corrections = connection.execute(select(hieu_chinh).where(hieu_chinh.c.mahoso == mahoso)
                                         .order_by(hieu_chinh.c.requested_at, hieu_chinh.c.id)).mappings().all()
    return {
        "mahoso": mahoso,
        "madonvi": dossier["madonvi"],
        "state": dossier["state"],
        "source_hash": dossier["source_hash"],
        "versions": [{"number": n, "version_hash": v["version_hash"], "source_hash": v["source_hash"],
                      "fetched_at": v["fetched_at"],
                      "recorded_at": v["recorded_at"], "current": n == len(versions),
                      "object_keys": json.loads(v["object_keys"] or "[]")} for n, v in enumerate(versions, start=1)],
        "files": [{"matailieu": f["matailieu"], "ten_file": f["ten_file"], "object_key": f["object_key"],
                   "size": f["size"], "sha256": f["sha256"], "stored_at": f["stored_at"],
                   "reported_at": f["reported_at"], "superseded_at": f["superseded_at"],
                   "superseded_reason": f["superseded_reason"]} for f in files],
        "corrections": [{"correction_id": c["correction_id"], "action": c["action"], "matailieu": c["matailieu"],
                         "ten_file": c["ten_file"], "requested_by": c["requested_by"],
                         "requested_at": c["requested_at"], "status": c["status"], "attempts": c["attempts"],
                         "outcome": c["outcome"], "finished_at": c["finished_at"]} for c in corrections],
    }


def _when(value) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def render(found: dict[str, Any]) -> str:
    lines = [f"dossier {found['mahoso']} ({found['madonvi']}), {found['state']}", "", "versions:"]
    lines.append(table(["#", "version", "seen at", "files", "current"],
                       [[v["number"], v["version_hash"][:12], _when(v["fetched_at"]), len(v["object_keys"]),
                         "yes" if v["current"] else ""] for v in found["versions"]], right={0, 3}))
    lines += ["", "files:"]
    lines.append(table(["matailieu", "ten_file", "bytes", "stored", "reported", "superseded", "object key"],
                       [[f["matailieu"], f["ten_file"], f["size"], _when(f["stored_at"]), _when(f["reported_at"]),
                         _when(f["superseded_at"]), f["object_key"]] for f in found["files"]], right={2}))
    lines += ["", "corrections:"]
    if found["corrections"]:
        lines.append(table(["id", "action", "matailieu", "by", "asked", "status", "outcome"],
                           [[c["correction_id"][:12], c["action"], c["matailieu"], c["requested_by"],
                             _when(c["requested_at"]), c["status"], (c["outcome"] or "")[:80]]
                            for c in found["corrections"]]))
    else:
        lines.append("(none)")
    return "\n".join(lines)
