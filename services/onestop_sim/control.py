"""`/_sim/*` controls that change the vendor's data at run time, as the vendor's own staff would.

- `POST /_sim/dossiers/{mahoso}/files` with `{"add": [{"matailieu", "ten_file", "size", "tentailieu"?}],
  "remove": ["MATAILIEU", ...], "resize": {"MATAILIEU": SIZE}}`: adds generated files, deletes every file of
  a type, or changes the bytes of a type's generated files *under the same url_file* (a new size gives new
  bytes and a new ETag). The dossier loses its synced mark, so the no-date sync offers it again.
- `POST /_sim/dossiers/{mahoso}/poison` with `{"kind": KIND}` poisons a dossier as `poison.py` describes, and
  `{"kind": null}` heals it (codes, dates and files are served clean again); either way the dossier loses its
  synced mark. The answer names the dossier's `mahoso` as served from now on (a NUL goes in or out).
- `POST /_sim/catalog` with `{"add": [["CODE", "NAME"], ...], "remove": ["CODE", ...]}` or `{"reset": true}`:
  changes what `danhmucloaitailieu` lists.

Not part of the vendor API, and left out of the OpenAPI page.
"""

from __future__ import annotations

import json
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.onestop_sim import attachments, poison, vocab
from services.onestop_sim.context import Sim, sim_of
from services.onestop_sim.state import transaction

router = APIRouter(prefix="/_sim", include_in_schema=False)

CATALOG_KEY = "catalog"


def catalog_of(sim: Sim) -> list[tuple[str, str]]:
    """The catalog as served now: the built-in one unless changed through `/_sim/catalog`."""
    changed = sim.store.get_meta(CATALOG_KEY)
    if changed is None:
        return list(vocab.CATALOG)
    return [(str(code), str(name)) for code, name in changed]


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": "400"}, status_code=400)


@router.post("/dossiers/{mahoso}/files")
async def change_files(mahoso: str, request: Request):
    sim = sim_of(request)
    try:
        body = json.loads(await request.body() or b"{}")
        adds = [(str(f["matailieu"]), str(f["ten_file"]), int(f.get("size", 20000)), str(f.get("tentailieu", "")))
                for f in body.get("add", [])]
        removes = [str(code) for code in body.get("remove", [])]
        resizes = {str(code): int(size) for code, size in body.get("resize", {}).items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return _bad(f"malformed change: {exc}")
    row = sim.store.conn.execute("SELECT id FROM dossier WHERE mahoso = ?", (mahoso,)).fetchone()
    if row is None:
        return JSONResponse({"error": "no such dossier", "code": "404"}, status_code=404)
    dossier_id = row[0]
    with transaction(sim.store.conn) as conn:
        for code in removes:
            files = attachments.files_of(conn, dossier_id, code)
            attachments.delete_files(conn, dossier_id, [f["id"] for f in files])
        for code, size in resizes.items():
            # New bytes at the same address: the stamp stays, the size (and with it content and ETag) changes.
            conn.execute("UPDATE file SET size = ?, sha256 = NULL, synced = 0 WHERE dossier_id = ? AND matailieu = ? "
                         "AND kind = 'generated'", (max(size, 1024), dossier_id, code))
        for code, ten_file, size, title in adds:
            cursor = conn.execute(
                "INSERT INTO file (dossier_id, matailieu, tentailieu, ten_file, size, kind) "
                "VALUES (?, ?, ?, ?, ?, 'generated')",
                (dossier_id, code, title or dict(vocab.CATALOG).get(code, code), ten_file, max(size, 1024)),
            )
            file_id = cursor.lastrowid or 0
            conn.execute("UPDATE file SET stamp = ? WHERE id = ?",
                         (attachments.make_stamp(date.today(), file_id, sim.config.seed), file_id))
        conn.execute("UPDATE dossier SET synced = 0 WHERE id = ?", (dossier_id,))
    return {"ok": True, "mahoso": mahoso}


@router.post("/dossiers/{mahoso}/poison")
async def change_poison(mahoso: str, request: Request):
    sim = sim_of(request)
    try:
        body = json.loads(await request.body() or b"{}")
        kind = poison.check_kind(body["kind"])
    except (ValueError, TypeError, KeyError) as exc:
        return _bad(f"malformed change: {exc}; known kinds: {', '.join(poison.KINDS)}")
    row = sim.store.conn.execute("SELECT id FROM dossier WHERE mahoso = ?", (mahoso,)).fetchone()
    if row is None:
        return JSONResponse({"error": "no such dossier", "code": "404"}, status_code=404)
    with transaction(sim.store.conn) as conn:
        poison.apply(conn, row[0], kind, sim.config.poison, sim.config.seed)
        served = conn.execute("SELECT mahoso FROM dossier WHERE id = ?", (row[0],)).fetchone()[0]
    return {"ok": True, "mahoso": served, "poison": kind}


@router.post("/catalog")
async def change_catalog(request: Request):
    sim = sim_of(request)
    try:
        body = json.loads(await request.body() or b"{}")
        if body.get("reset"):
            with transaction(sim.store.conn) as conn:
                conn.execute("DELETE FROM meta WHERE key = ?", (CATALOG_KEY,))
            return {"catalog": [list(entry) for entry in vocab.CATALOG]}
        current = dict(catalog_of(sim))
        for code in body.get("remove", []):
            current.pop(str(code), None)
        for code, name in body.get("add", []):
            current[str(code)] = str(name)
    except (ValueError, TypeError, AttributeError) as exc:
        return _bad(f"malformed change: {exc}")
    with transaction(sim.store.conn) as conn:
        sim.store.set_meta(CATALOG_KEY, [[code, name] for code, name in current.items()], conn)
    return {"catalog": [[code, name] for code, name in current.items()]}
