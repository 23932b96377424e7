"""The three documented endpoints (SPEC II.3): dangnhap, dongbodulieumotcua, capnhattrangthaidongbo."""

from __future__ import annotations

import hmac
import random
import re
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from services.onestop_sim.context import sim_of
from services.onestop_sim.errors import API_PREFIX, BAD_LOGIN, SERVER_ERROR, VendorError
from services.onestop_sim.faults import roll
from services.onestop_sim.models import (
    MAX_MARKS,
    Dossier,
    DossierCode,
    ErrorBody,
    LoginRequest,
    LoginResponse,
    MarkRequest,
    StatusBody,
    SyncRequest,
)
from services.onestop_sim.render import outer_of, sync_chunks
from services.onestop_sim.streaming import StreamBody
from services.onestop_sim.tokens import require_token

# A body without a Content-Type is still read as JSON, as a lenient vendor server would.
router = APIRouter(prefix=API_PREFIX.rstrip("/"), tags=["documented API (SPEC II.3)"], strict_content_type=False)
DAY = re.compile(r"\d{1,2}/\d{1,2}/\d{4}")
UPDATED = {"status": 200, "message": "Cập nhật thành công"}
# Typed as FastAPI's `responses` argument expects, so that the dicts can be merged and extended.
Responses = dict[int | str, dict[str, Any]]
ERRORS: Responses = {400: {"model": ErrorBody}, 401: {"model": ErrorBody}}
STATUS_ERRORS: Responses = {400: {"model": StatusBody}, 401: {"model": ErrorBody}}
_codes = TypeAdapter(list[DossierCode])


@router.post("/dangnhap", response_model=LoginResponse, responses={400: {"model": ErrorBody}},
             summary="Log in: a token for the session (II.3.1)")
def login(body: LoginRequest, request: Request):
    sim = sim_of(request)
    # Compared as bytes in constant time: the password is plain text on the wire, at least don't leak it by timing.
    user_ok = hmac.compare_digest(body.username.encode(), sim.config.username.encode())
    password_ok = hmac.compare_digest(body.password.encode(), sim.config.password.encode())
    if not (user_ok and password_ok):
        raise VendorError(400, BAD_LOGIN, shape="error")
    sim.counters.add("logins")
    return {"token": sim.tokens.issue(body.username, sim.faults.current.token_lifetime)}


def parse_day(text: str | None, name: str) -> date | None:
    if text is None or not text.strip():
        return None
    try:
        if not DAY.fullmatch(text.strip()):
            raise ValueError
        day, month, year = map(int, text.strip().split("/"))
        return date(year, month, day)
    except ValueError:
        raise VendorError(400, f"Ngày không hợp lệ ({name}): phải có dạng dd/mm/yyyy", shape="error") from None


def date_range(tungay: str | None, denngay: str | None) -> tuple[str, str] | None:
    """None when neither date is given (the "not yet synced" call); otherwise an inclusive ISO range."""
    start, end = parse_day(tungay, "tungay"), parse_day(denngay, "denngay")
    if start is None and end is None:
        return None
    if start and end and start > end:
        raise VendorError(400, "Từ ngày phải nhỏ hơn hoặc bằng đến ngày", shape="error")
    return (start or date.min).isoformat(), (end or date.max).isoformat()


@router.post("/dongbodulieumotcua", dependencies=[Depends(require_token)],
             responses={200: {"model": list[Dossier], "description": "The dossiers, streamed."}, **ERRORS},
             summary="Dossiers and their attached files (II.3.2)")
def sync(body: SyncRequest, request: Request):
    sim = sim_of(request)
    window = date_range(body.tungay, body.denngay)
    sim.counters.add("sync_calls")
    sim.counters.add(f"sync_calls@{body.madonvi}")  # per unit: a test sees that one unit's polls go on
    faults = sim.faults.current
    outer = outer_of(faults.shape, next(sim.responses))
    # One connection and one read transaction for the whole response: every pass sees the same snapshot.
    conn = sim.store.connect(any_thread=True)
    try:
        conn.execute("BEGIN")

        def chunks():
            return sync_chunks(sim.store, conn, body.madonvi, window, faults.shape, outer, sim.config.public_url,
                               sim.config.poison)

        length = cut = None
        if roll(faults.truncate_rate):
            # A cut-short response still promises its full length, so measure it first (a second pass).
            length = sum(len(chunk) for chunk in chunks())
            cut = max(1, int(length * random.uniform(0.05, 0.95)))
    except BaseException:
        conn.close()
        raise
    return StreamBody(chunks(), media_type="application/json; charset=utf-8", content_length=length,
                      truncate_at=cut, blocking=True, on_close=conn.close)


def mahoso_list(value: list[DossierCode] | str) -> list[str]:
    if isinstance(value, str):
        try:
            value = _codes.validate_json(value)
        except ValidationError:
            raise VendorError(400, 'dataHoso không hợp lệ: cần danh sách [{"mahoso": ...}]', shape="status") from None
    if not value:
        raise VendorError(400, "dataHoso không được để trống", shape="status")
    if len(value) > MAX_MARKS:
        raise VendorError(400, f"dataHoso tối đa {MAX_MARKS} hồ sơ mỗi lần", shape="status")
    return [item.mahoso for item in value]


@router.post("/capnhattrangthaidongbo", dependencies=[Depends(require_token)], response_model=StatusBody,
             responses=STATUS_ERRORS, summary="Mark dossiers synced (II.3.3)")
def mark_synced(body: MarkRequest, request: Request):
    sim = sim_of(request)
    codes = mahoso_list(body.dataHoso)
    sim.store.mark_synced(body.madonvi, codes)
    sim.counters.add("mark_calls")
    if roll(sim.faults.current.mark_fail_after_record_rate):
        # The marks are recorded, yet the caller hears failure: its retry must do no harm.
        return JSONResponse({"status": 500, "message": SERVER_ERROR}, status_code=500)
    return UPDATED
