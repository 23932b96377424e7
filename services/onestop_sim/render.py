"""The body of a sync response, written as it is read: a generator of JSON chunks over SQLite rows.

Memory stays bounded by one chunk however many dossiers match. The `--shape` fault decides how the
list and each dossier's `file_dinh_kem` are wrapped; `mixed` varies both, adds fields nobody documented,
and gives a dossier without files every empty form (`[]`, `""`, `null`, a missing key, ...) while every
dossier with files keeps them recoverable (an array, a JSON string of it, or `{"data": [...]}`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from services.onestop_sim import poison
from services.onestop_sim.attachments import url_file
from services.onestop_sim.state import Store

CHUNK_BYTES = 128 * 1024
# The three outer forms `mixed` rotates through, one per response.
MIXED_OUTER = ("array", "data", "status")
_MISSING = object()
EMPTY_FORMS: tuple[object, ...] = ([], "", None, _MISSING, "[]", {"data": []})


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _files_value(files: list[dict], form: str, dossier_id: int):
    if form == "mixed":
        if not files:
            return EMPTY_FORMS[dossier_id % len(EMPTY_FORMS)]
        form = ("array", "files-string", "files-object")[dossier_id % 3]
    if form == "files-string":
        return _dumps(files)
    if form == "files-object":
        return {"data": files}
    return files


def dossier_json(row: tuple, file_rows: list[tuple], shape: str, public_url: str,
                 sizes: poison.PoisonSizes | None = None) -> str:
    dossier_id, mahoso, madonvi, applicant, ngaynhan, mathutuc, tenthutuc, has_result, kind = row
    mixed = shape == "mixed"
    files = []
    for _file_id, matailieu, tentailieu, ten_file, stamp, override, size in file_rows:
        item = {"matailieu": matailieu, "tentailieu": tentailieu,
                "url_file": url_file(public_url, madonvi, stamp, ten_file, override), "ten_file": ten_file}
        if mixed:
            item["dungluong"] = size
        files.append(item)
    value = {"mahoso": mahoso, "tentochuccanhan": applicant, "ngaynhan": ngaynhan,
             "mathutuc": mathutuc, "tenthutuc": tenthutuc}
    files_value = _files_value(files, shape, dossier_id)
    if files_value is not _MISSING:
        value["file_dinh_kem"] = files_value
    if mixed:
        value.update(
            trangthai="Đã trả kết quả" if has_result else "Đang xử lý", ghichu=None, sotrang=dossier_id % 40 + 1
        )
    if kind in poison.RENDERED:
        return poison.render(value, kind, madonvi, sizes or poison.PoisonSizes(), _dumps)
    return _dumps(value)


def outer_of(shape: str, response_number: int) -> str:
    if shape == "mixed":
        return MIXED_OUTER[response_number % len(MIXED_OUTER)]
    return "data" if shape == "data" else "array"


def sync_chunks(
    store: Store,
    conn: sqlite3.Connection,
    madonvi: str,
    date_range: tuple[str, str] | None,
    shape: str,
    outer: str,
    public_url: str,
    sizes: poison.PoisonSizes | None = None,
) -> Iterator[bytes]:
    """The whole response body in chunks of about CHUNK_BYTES. The same inputs give the same bytes."""
    opening = {"array": "[", "data": '{"data":[', "status": '{"status":200,"message":"Thành công","data":['}[outer]
    parts, size, count = [opening], len(opening), 0
    for row, files in store.iter_sync(conn, madonvi, date_range):
        text = ("," if count else "") + dossier_json(row, files, shape, public_url, sizes)
        parts.append(text)
        size += len(text)
        count += 1
        if size >= CHUNK_BYTES:
            yield "".join(parts).encode("utf-8")
            parts, size = [], 0
    parts.append({"array": "]", "data": "]}", "status": f'],"tongso":{count}}}'}[outer])
    yield "".join(parts).encode("utf-8")
