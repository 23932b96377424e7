"""The web application: `create_app(settings)` builds it; `dongbo web` serves it with uvicorn.

Routes are thin: they declare the session or role they need (services/web/auth.py), read through
services/web/queries.py, and render one template per page. Every response carries the security headers;
files keep the stricter ones services/web/files.py gives them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import event
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.web import queries
from services.web.accounts import User, check_password
from services.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    LoginRequired,
    client_ip,
    current_session,
    end_session,
    is_https,
    login_csrf_ok,
    record,
    require_csrf,
    require_role,
    require_user,
    start_session,
    wait_before_login,
)
from services.web.files import INLINE_TYPES, served_type, stream_file
from services.web.folding import fold
from services.web.health import HealthChecks
from shared.archive.versions import load_history

log = logging.getLogger(__name__)
CurrentUser = Annotated[User, Depends(require_user)]
Operator = Annotated[User, Depends(require_role("operator"))]
Csrf = Annotated[None, Depends(require_csrf)]
HERE = Path(__file__).resolve().parent
# No script at all, no inline style, nothing from another origin; only this site may frame its previews.
CSP = ("default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PROCEDURES_SECONDS = 300.0
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
ACTIONS = {"login": "Đăng nhập", "login-failed": "Đăng nhập sai", "login-throttled": "Đăng nhập bị chặn tạm thời",
           "logout": "Đăng xuất", "view": "Xem hồ sơ", "preview": "Xem trước tệp", "download": "Tải tệp",
           "replay": "Chạy lại thư chết"}
CORRECTION_STATES = {"queued": "Đang chờ gửi", "applied": "Đã áp dụng", "refused": "Bị từ chối",
                     "failed": "Gửi không được (thư chết)"}
CORRECTION_ACTIONS = {"replace": "Thay tệp", "delete": "Xoá tệp"}
STATES = {"queued": "Đang chờ tải", "stored": "Đã lưu tệp", "indexed": "Đã ghi CSDL", "synced": "Đã đồng bộ",
          "failed": "Bị dừng (thư chết)"}


def create_app(settings, engine=None, store=None) -> FastAPI:
    from shared.db.engine import make_engine
    from shared.storage.objects import ObjectStore

    engine = engine or make_engine(settings.database_url.get_secret_value())
    if engine.dialect.name == "sqlite":
        # SQLite has no translate(): the search folds names in Python there (a scan; fine for a demo).
        event.listen(engine, "connect",
                     lambda connection, _record: connection.create_function("dongbo_fold", 1, _fold_or_empty,
                                                                            deterministic=True))
    app = FastAPI(title="dongbo", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.engine = settings, engine
    app.state.store = store or ObjectStore.from_settings(settings)
    app.state.health = HealthChecks(settings, engine, app.state.store)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = _when
    templates.env.filters["size"] = _size
    templates.env.globals.update(ACTIONS=ACTIONS, STATES=STATES, CORRECTION_STATES=CORRECTION_STATES,
                                 CORRECTION_ACTIONS=CORRECTION_ACTIONS, INLINE_TYPES=INLINE_TYPES,
                                 served_type=served_type)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        context.setdefault("user", getattr(request.state, "user", None))
        context.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
        return templates.TemplateResponse(request, name, context, status_code=status)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if is_https(request):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "public, max-age=3600")
        else:
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def error_page(request: Request, exc: StarletteHTTPException):
        messages = {403: "Bạn không có quyền xem trang này.", 404: "Không tìm thấy trang hoặc hồ sơ này."}
        message = exc.detail if isinstance(exc.detail, str) and exc.status_code == 403 else \
            messages.get(exc.status_code, "Có lỗi xảy ra.")
        if getattr(request.state, "user", None) is None and (found := current_session(request)):
            request.state.user, request.state.csrf_token = found
        return page(request, "error.html", exc.status_code, code=exc.status_code, message=message)

    # -- health of the process itself (for the container's health check; tells nothing about data) --------

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    # -- log in and out -------------------------------------------------------------------------------

    @app.get("/login")
    def login_form(request: Request, next: str = "/search"):
        token = secrets.token_urlsafe(24)
        response = page(request, "login.html", login_csrf=token, next=_safe_next(next), error="")
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=is_https(request),
                            max_age=3600, path="/login")
        return response

    @app.post("/login")
    async def login(request: Request, username: str = Form(""), password: str = Form(""),
                    csrf_token: str = Form(""), next: str = Form("/search")):
        engine, ip, username = app.state.engine, client_ip(request), username.strip()[:100]

        def again(error: str, status: int) -> HTMLResponse:
            return page(request, "login.html", status, login_csrf=request.cookies.get(LOGIN_CSRF_COOKIE, ""),
                        next=_safe_next(next), error=error, username=username)

        if not login_csrf_ok(request, csrf_token):
            raise HTTPException(403, "Biểu mẫu đăng nhập đã hết hạn; hãy tải lại trang đăng nhập.")
        wait = await asyncio.to_thread(wait_before_login, engine, username, ip, datetime.now(UTC))
        if wait > 0:
            await asyncio.to_thread(record, engine, username, "login-throttled", ip)
            response = again(f"Đăng nhập sai nhiều lần. Hãy thử lại sau {int(wait) + 1} giây.", 429)
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = await asyncio.to_thread(check_password, engine, username, password)
        if user is None:
            await asyncio.to_thread(record, engine, username, "login-failed", ip)
            return again("Tên đăng nhập hoặc mật khẩu không đúng.", 401)
        await asyncio.to_thread(record, engine, username, "login", ip)
        token = await asyncio.to_thread(start_session, engine, user)
        done = RedirectResponse(_safe_next(next), status_code=303)
        done.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=is_https(request),
                            max_age=int(SESSION_LIFETIME.total_seconds()), path="/")
        done.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return done

    @app.post("/logout")
    def logout(request: Request, user: CurrentUser, _csrf: Csrf):
        end_session(app.state.engine, request.cookies.get(SESSION_COOKIE, ""))
        record(app.state.engine, user.username, "logout", client_ip(request))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- search and dossiers ----------------------------------------------------------------------------

    @app.get("/")
    def home(_user: CurrentUser):
        return RedirectResponse("/search", status_code=303)

    cached: dict[str, tuple[float, list]] = {}

    def procedure_choices(connection) -> list:
        # A scan of every dossier's procedure: remembered for a few minutes, the list changes rarely.
        at, value = cached.get("procedures", (0.0, []))
        if time.monotonic() - at > PROCEDURES_SECONDS:
            value = queries.procedures(connection)
            cached["procedures"] = (time.monotonic(), value)
        return value

    def unit_choices(connection) -> list:
        # Without DONGBO_UNITS: the units the archive holds, remembered like the procedures.
        at, value = cached.get("units", (0.0, []))
        if time.monotonic() - at > PROCEDURES_SECONDS:
            value = queries.archive_units(connection)
            cached["units"] = (time.monotonic(), value)
        return value

    @app.get("/search")
    def search(request: Request, user: CurrentUser, q: str = "", unit: str = "",
               procedure: str = "", date_from: str = Query("", alias="from"), date_to: str = Query("", alias="to"),
               page_number: int = Query(1, alias="page", ge=1, le=10_000)):
        form = queries.SearchForm(q=q[:200], unit=unit, procedure=procedure[:200], date_from=_date(date_from),
                                  date_to=_date(date_to), page=page_number)
        with app.state.engine.connect() as connection:
            rows, total = queries.search(connection, user, form)
            procedures = procedure_choices(connection)
            units = sorted(set(user.units) if user.units else set(settings.units) or unit_choices(connection))
        params = {"q": q, "unit": unit, "procedure": procedure, "from": date_from, "to": date_to}
        base = urlencode({k: v for k, v in params.items() if v})
        pages = max(1, -(-min(total, queries.COUNT_CAP) // queries.PAGE_SIZE))
        return page(request, "search.html", form=form, params=params, rows=rows, total=total,
                    capped=total > queries.COUNT_CAP, units=units, procedures=procedures, base=base,
                    pages=pages, folded=fold(q), bad_date=bool((date_from and not form.date_from)
                                                              or (date_to and not form.date_to)))

    @app.get("/dossier/{dossier_id}")
    def dossier(request: Request, dossier_id: int, user: CurrentUser):
        with app.state.engine.connect() as connection:
            found = queries.dossier(connection, user, dossier_id)
            if found is None:
                raise HTTPException(404)
            files = queries.files_of(connection, dossier_id)
            steps, state = queries.journey(connection, found, files)
            history = load_history(connection, found["mahoso"])
        record(app.state.engine, user.username, "view", client_ip(request), mahoso=found["mahoso"])
        with app.state.engine.connect() as connection:
            accesses = queries.access_of(connection, found["mahoso"]) if user.is_operator else []
        # The page's file table is the current version; older versions' files are listed (and downloadable)
        # under the versions, newest first.
        current = [f for f in files if f["superseded_at"] is None]
        versions = list(reversed(history["versions"])) if history else []
        corrections = history["corrections"] if history else []
        return page(request, "dossier.html", d=found, files=current, steps=steps, state=state, accesses=accesses,
                    versions=versions, corrections=corrections)

    def _file(request: Request, user: User, file_id: int, inline: bool):
        with app.state.engine.connect() as connection:
            row = queries.file_for(connection, user, file_id)
        if row is None:
            raise HTTPException(404)
        record(app.state.engine, user.username, "preview" if inline else "download", client_ip(request),
               mahoso=row["mahoso"], tai_lieu_id=row["id"], detail=row["ten_file"])
        return stream_file(app.state.store, row, inline=inline)

    @app.get("/file/{file_id}")
    def download(request: Request, file_id: int, user: CurrentUser):
        return _file(request, user, file_id, inline=False)

    @app.get("/file/{file_id}/preview")
    def preview(request: Request, file_id: int, user: CurrentUser):
        return _file(request, user, file_id, inline=True)

    # -- the IT officer's pages ------------------------------------------------------------------------------

    @app.get("/health")
    def health(request: Request, user: CurrentUser):
        now = datetime.now(UTC)
        with app.state.engine.connect() as connection:
            board = queries.dashboard(connection, user, list(settings.units), now)
        checks = app.state.health.results()
        peak = max([1] + [n for u in board["units"].values() for n in u["days"].values()])
        return page(request, "health.html", board=board, checks=checks, peak=peak, now=now)

    @app.get("/dead-letters")
    def dead_letters(request: Request, user: Operator, stage: str = "",
                     reason: str = "", unit: str = "", mahoso: str = "", replayed: int | None = None):
        from services.web.dead_letters import list_letters
        from shared.broker.topology import WORK_QUEUES

        stages = (stage,) if stage in WORK_QUEUES else WORK_QUEUES
        error, letters = "", []
        try:
            letters = list_letters(settings, _selection(user, reason, unit, mahoso), stages)
        except Exception as exc:  # the broker down: the page says so instead of failing
            from cli.common import one_line

            error = one_line(exc)
        reasons = sorted({letter.reason for letter in letters})
        return page(request, "dead_letters.html", letters=letters, error=error, stages=WORK_QUEUES, reasons=reasons,
                    filters={"stage": stage, "reason": reason, "unit": unit, "mahoso": mahoso}, replayed=replayed)

    @app.post("/dead-letters/replay")
    def replay(request: Request, user: Operator,
               _csrf: Csrf, stage: str = Form(""), reason: str = Form(""),
               mahoso: str = Form("")):
        from services.web.dead_letters import replay_letters
        from shared.broker.topology import WORK_QUEUES

        if not (reason or mahoso):
            raise HTTPException(400, "Chọn một hồ sơ hoặc một lý do.")
        stages = (stage,) if stage in WORK_QUEUES else WORK_QUEUES
        done = replay_letters(settings, _selection(user, reason, "", mahoso), stages)
        for letter in done:
            record(app.state.engine, user.username, "replay", client_ip(request), mahoso=letter.mahoso,
                   detail=f"{letter.stage}: {letter.reason}")
        return RedirectResponse(f"/dead-letters?replayed={len(done)}", status_code=303)

    @app.get("/access-log")
    def access_log(request: Request, _user: Operator, username: str = "",
                   action: str = "", mahoso: str = "", page_number: int = Query(1, alias="page", ge=1)):
        with app.state.engine.connect() as connection:
            entries = queries.access_entries(connection, username, action, mahoso, page_number)
        filters = {"username": username, "action": action, "mahoso": mahoso}
        return page(request, "access_log.html", entries=entries, filters=filters, page_number=page_number,
                    base=urlencode({k: v for k, v in filters.items() if v}))

    return app


def _selection(user: User, reason: str, unit: str, mahoso: str):
    from shared.broker.dead_letters import Selection

    units = {unit} if unit else set()
    if user.units:  # an operator limited to units acts on their dead letters only
        units = (units & set(user.units)) if units else set(user.units)
        if not units:
            units = {"\x00none"}
    return Selection(units=units, reasons={reason} if reason else set(), mahosos={mahoso} if mahoso else set())


def _fold_or_empty(value):
    return fold(value) if isinstance(value, str) else ""


def _safe_next(target: str) -> str:
    """Only a path of this site: never `//host` or `https://…` (an open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/search"
    return target


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def _when(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        return value.strftime("%d/%m/%Y %H:%M:%S") + " UTC"
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    return str(value)


def _size(value) -> str:
    number = float(value or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if number < 1024 or unit == "GB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return str(value)


