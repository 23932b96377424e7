"""`/_sim/*`: what the tests look at and steer. Not part of the vendor API, and left out of the OpenAPI page.

Counts here are exact: event counters are flushed before they are read. File hashes are computed on
first need and kept in the state file, since hashing every byte of a large seed takes a while.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.onestop_sim import content
from services.onestop_sim.attachments import url_file
from services.onestop_sim.context import Sim, sim_of
from services.onestop_sim.state import transaction
from services.onestop_sim.streaming import StreamBody

router = APIRouter(prefix="/_sim", include_in_schema=False)

LISTING = """
SELECT d.id, d.mahoso, d.madonvi, d.tentochuccanhan, d.ngaynhan, d.mathutuc, d.tenthutuc, d.has_result,
       d.synced, d.mark_count, d.poison, f.id AS file_id, f.matailieu, f.tentailieu, f.ten_file, f.stamp,
       f.url_override, f.size, f.sha256, f.fetch_count, f.kind, f.synced AS file_synced, f.mark_count AS file_marks
FROM dossier d LEFT JOIN file f ON f.dossier_id = d.id
WHERE (:madonvi IS NULL OR d.madonvi = :madonvi) AND (:mahoso IS NULL OR d.mahoso = :mahoso)
ORDER BY d.id, f.id
"""


def _listing(sim: Sim, madonvi: str | None, mahoso: str | None) -> Iterator[bytes]:
    conn = sim.store.connect(any_thread=True)
    try:
        cursor = conn.execute(LISTING, {"madonvi": madonvi, "mahoso": mahoso})
        yield b"["
        first, current_id, current = True, None, None
        while rows := cursor.fetchmany(500):
            parts: list[str] = []
            hashed: list[tuple[str, int]] = []
            for row in rows:
                if row["id"] != current_id:
                    if current is not None:
                        parts.append(("" if first else ",") + json.dumps(current, ensure_ascii=False))
                        first = False
                    current_id, current = row["id"], _dossier(row)
                if row["file_id"] is not None and current is not None:  # set just above for this row
                    current["files"].append(_file(sim, row, hashed))
            if hashed:
                with transaction(sim.store.conn) as writer:
                    writer.executemany("UPDATE file SET sha256 = ? WHERE id = ?", hashed)
            yield "".join(parts).encode("utf-8")
        if current is not None:
            yield (("" if first else ",") + json.dumps(current, ensure_ascii=False)).encode("utf-8")
        yield b"]"
    finally:
        conn.close()


def _dossier(row) -> dict:
    return {"mahoso": row["mahoso"], "madonvi": row["madonvi"], "tentochuccanhan": row["tentochuccanhan"],
            "ngaynhan": row["ngaynhan"], "mathutuc": row["mathutuc"], "tenthutuc": row["tenthutuc"],
            "has_result": bool(row["has_result"]), "synced": bool(row["synced"]), "mark_count": row["mark_count"],
            "poison": row["poison"], "files": []}


def _file(sim: Sim, row, hashed: list) -> dict:
    sha256, pages = row["sha256"], None
    if row["kind"] not in ("uploaded", "missing", "forbidden-host"):
        text = content.page_text(row["mahoso"], row["matailieu"], row["ten_file"])
        layout = content.layout(sim.config.seed, row["file_id"], row["size"], text)
        pages = layout.pages
        if sha256 is None:
            sha256 = layout.sha256()
            hashed.append((sha256, row["file_id"]))
    return {
        "matailieu": row["matailieu"],
        "tentailieu": row["tentailieu"],
        "ten_file": row["ten_file"],
        "url_file": url_file(sim.config.public_url, row["madonvi"], row["stamp"], row["ten_file"], row["url_override"]),
        "size": row["size"],
        "sha256": sha256,
        "fetch_count": row["fetch_count"],
        "kind": row["kind"],
        "pages": pages,  # of the generated PDF; None for an uploaded file (its bytes are the uploader's)
        "synced": bool(row["file_synced"]),
        "mark_count": row["file_marks"],
    }


@router.get("/health")
def health():
    return {"ok": True}


@router.get("/dossiers")
async def dossiers(request: Request, madonvi: str | None = None, mahoso: str | None = None):
    sim = sim_of(request)
    await anyio.to_thread.run_sync(sim.counters.flush)
    return StreamBody(_listing(sim, madonvi, mahoso), media_type="application/json; charset=utf-8", blocking=True)


@router.get("/stats")
def stats(request: Request):
    sim = sim_of(request)
    drips = list(sim.drips)
    return {**sim.counters.totals(), **sim.store.totals(), "drips": len(drips),
            "longest_drip_seconds": max(drips, default=0)}


@router.get("/faults")
def get_faults(request: Request):
    return sim_of(request).faults.current.as_dict()


@router.post("/faults")
async def set_faults(request: Request):
    try:
        changes = json.loads(await request.body() or b"{}")
        return sim_of(request).faults.update(changes).as_dict()
    except ValueError as exc:  # also json.JSONDecodeError
        return JSONResponse({"error": str(exc), "code": "400"}, status_code=400)


@router.post("/expire-tokens")
def expire_tokens(request: Request):
    return {"ok": True, "generation": sim_of(request).tokens.expire_all()}
