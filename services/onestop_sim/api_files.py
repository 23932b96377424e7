"""APIs 5-8 of the work plan, which the document names but does not specify: dongbo's design.

Same style as the documented three: `POST {base}<vietnamese words joined>`, a JSON body, the Bearer
token, and `{"status": 200, "message": "Cập nhật thành công"}` / `{"status": 4xx, "message": ...}`.
Changing or deleting a dossier's files clears its synced mark, so the no-date sync offers it again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from fastapi import APIRouter, Depends, Request

from services.onestop_sim import attachments, vocab
from services.onestop_sim.api import STATUS_ERRORS, UPDATED, Responses
from services.onestop_sim.context import Sim, sim_of
from services.onestop_sim.control import catalog_of
from services.onestop_sim.errors import API_PREFIX, VendorError
from services.onestop_sim.models import (
    MAX_UPLOAD,
    CatalogRequest,
    DocumentType,
    ErrorBody,
    FileDeleteRequest,
    FileMarkRequest,
    FileReplaceRequest,
    FileReplaceResponse,
    StatusBody,
)
from services.onestop_sim.state import transaction
from services.onestop_sim.tokens import require_token

router = APIRouter(prefix=API_PREFIX.rstrip("/"), tags=["designed API (work plan 5-8, dongbo's design)"],
                   dependencies=[Depends(require_token)], strict_content_type=False)
NOT_FOUND_DOSSIER = "Không tìm thấy hồ sơ"
NOT_FOUND_FILE = "Không tìm thấy tài liệu"
STATUS_404: Responses = {**STATUS_ERRORS, 404: {"model": StatusBody}}


def _dossier(sim: Sim, madonvi: str, mahoso: str) -> int:
    dossier_id = sim.store.dossier_id(madonvi, mahoso)
    if dossier_id is None:
        raise VendorError(404, NOT_FOUND_DOSSIER, shape="status")
    return dossier_id


@router.post("/danhmucloaitailieu", response_model=list[DocumentType],
             responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody}}, summary="(5) Document-type catalog")
def catalog(request: Request, body: CatalogRequest | None = None):
    return [{"maloaitailieu": code, "tenloaitailieu": name} for code, name in catalog_of(sim_of(request))]


@router.post("/capnhattrangthaidongbofile", response_model=StatusBody, responses=STATUS_404,
             summary="(6) Mark files of a dossier synced")
def mark_files(body: FileMarkRequest, request: Request):
    sim = sim_of(request)
    dossier_id = _dossier(sim, body.madonvi, body.mahoso)
    chosen: list[int] = []
    for ref in body.dataFile:
        found = [row["id"] for row in attachments.files_of(sim.store.conn, dossier_id, ref.matailieu)
                 if attachments.matches(row, ref.url_file)]
        if not found:
            raise VendorError(404, f"{NOT_FOUND_FILE}: {ref.matailieu}", shape="status")
        chosen.extend(found)
    with transaction(sim.store.conn) as conn:
        attachments.mark_files(conn, list(dict.fromkeys(chosen)))
    sim.counters.add("file_mark_calls")
    sim.counters.add("file_marks", len(set(chosen)))
    return UPDATED


@router.post("/capnhatfiletheoloaitailieu", response_model=FileReplaceResponse, responses=STATUS_404,
             summary="(7) Replace a dossier's file of a document type")
def replace_file(body: FileReplaceRequest, request: Request):
    sim = sim_of(request)
    try:
        data = base64.b64decode(body.noidung_base64, validate=True)
    except (binascii.Error, ValueError):
        raise VendorError(400, "noidung_base64 không phải base64 hợp lệ", shape="status") from None
    if len(data) > MAX_UPLOAD:
        raise VendorError(400, f"File vượt quá {MAX_UPLOAD // (1024 * 1024)} MB", shape="status")
    dossier_id = _dossier(sim, body.madonvi, body.mahoso)
    digest = hashlib.sha256(data).hexdigest()
    with transaction(sim.store.conn) as conn:
        old = attachments.files_of(conn, dossier_id, body.matailieu)
        title = body.tentailieu or (
            old[0]["tentailieu"] if old else dict(vocab.CATALOG).get(body.matailieu, body.matailieu)
        )
        attachments.delete_files(conn, dossier_id, [row["id"] for row in old])
        stamp = attachments.add_upload(
            conn, dossier_id, body.matailieu, title, body.ten_file, data, digest, sim.config.seed
        )
    sim.counters.add("file_replacements")
    url = attachments.url_file(sim.config.public_url, body.madonvi, stamp, body.ten_file, None)
    return {**UPDATED, "url_file": url}


@router.post(
    "/xoafiletheoloaitailieu",
    response_model=StatusBody,
    responses=STATUS_404,
    summary="(8) Delete a dossier's file of a document type",
)
def delete_file(body: FileDeleteRequest, request: Request):
    sim = sim_of(request)
    dossier_id = _dossier(sim, body.madonvi, body.mahoso)
    with transaction(sim.store.conn) as conn:
        old = attachments.files_of(conn, dossier_id, body.matailieu)
        if not old:
            raise VendorError(404, f"{NOT_FOUND_FILE}: {body.matailieu}", shape="status")
        attachments.delete_files(conn, dossier_id, [row["id"] for row in old])
    sim.counters.add("file_deletions")
    return UPDATED
