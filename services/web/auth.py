"""Sessions, CSRF tokens, the log-in throttle, and the dependencies every route declares.

A session is a random token in an HttpOnly cookie; the database keeps only its SHA-256, with the user
and the session's CSRF token. Every form that changes something carries that CSRF token (the log-in
form, which comes before any session, uses a double-submit cookie instead). Routes state what they need
with `Depends(require_user)` or `Depends(require_role("operator"))`; none checks it by hand.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request
from sqlalchemy import and_, func, insert, select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from services.web.accounts import User, sessions, user_of, users
from shared.db.web_models import AccessLog

SESSION_COOKIE = "dongbo_session"
LOGIN_CSRF_COOKIE = "dongbo_login_csrf"
SESSION_LIFETIME = timedelta(hours=10)
# Failed log-ins per user name and address: after FREE_FAILURES, each further try waits twice as long as
# the one before (1 s, 2 s, 4 s … up to MAX_WAIT), counted over the last THROTTLE_WINDOW.
FREE_FAILURES = 3
MAX_WAIT = 300.0
THROTTLE_WINDOW = timedelta(minutes=15)

access_log = SQLModel.metadata.tables[AccessLog.__tablename__]


class LoginRequired(Exception):
    """No valid session: the handler sends the browser to the log-in page."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def is_https(request: Request) -> bool:
    """Secure cookies when the browser speaks HTTPS: directly, behind the reverse proxy, or by setting."""
    forced = request.app.state.settings.web_secure_cookies
    if forced is not None:
        return bool(forced)
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def record(engine: Engine, username: str, action: str, ip: str, mahoso: str | None = None,
           tai_lieu_id: int | None = None, detail: str = "") -> None:
    with engine.begin() as connection:
        connection.execute(insert(access_log).values(at=datetime.now(UTC), username=username[:100], action=action,
                                                     ip=ip[:64], mahoso=mahoso, tai_lieu_id=tai_lieu_id,
                                                     detail=detail))


def wait_before_login(engine: Engine, username: str, ip: str, now: datetime) -> float:
    """Seconds this name from this address must still wait before another try (0: may try now)."""
    since = now - THROTTLE_WINDOW
    with engine.connect() as connection:
        last_ok = connection.execute(select(func.max(access_log.c.at)).where(and_(
            access_log.c.username == username, access_log.c.ip == ip, access_log.c.action == "login",
            access_log.c.at >= since))).scalar()
        count, last = connection.execute(select(func.count(), func.max(access_log.c.at)).where(and_(
            access_log.c.username == username, access_log.c.ip == ip, access_log.c.action == "login-failed",
            access_log.c.at >= max(since, _aware(last_ok) or since)))).one()
    last = _aware(last)
    if count < FREE_FAILURES or last is None:
        return 0.0
    wait = min(2.0 ** (count - FREE_FAILURES), MAX_WAIT)
    return max(0.0, wait - (now - last).total_seconds())


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite returns naive UTC datetimes
        return value.replace(tzinfo=UTC)
    return value


def start_session(engine: Engine, user: User) -> str:
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(sessions.delete().where(sessions.c.expires_at < now))
        connection.execute(insert(sessions).values(token_hash=_hash(token), user_id=user.id,
                                                   csrf_token=secrets.token_urlsafe(32), created_at=now,
                                                   expires_at=now + SESSION_LIFETIME))
    return token


def end_session(engine: Engine, token: str) -> None:
    with engine.begin() as connection:
        connection.execute(sessions.delete().where(sessions.c.token_hash == _hash(token)))


def current_session(request: Request) -> tuple[User, str] | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    with engine_of(request).connect() as connection:
        row = connection.execute(
            select(users, sessions.c.csrf_token, sessions.c.expires_at)
            .select_from(sessions.join(users, sessions.c.user_id == users.c.id))
            .where(sessions.c.token_hash == _hash(token))).mappings().first()
    expires = _aware(row["expires_at"]) if row is not None else None
    if row is None or row["disabled"] or expires is None or expires < datetime.now(UTC):
        return None
    return user_of(row), row["csrf_token"]


def require_user(request: Request) -> User:
    found = current_session(request)
    if found is None:
        raise LoginRequired()
    request.state.user, request.state.csrf_token = found
    return found[0]


def require_role(role: str):
    def check(user: Annotated[User, Depends(require_user)]) -> User:
        if role == "operator" and not user.is_operator:
            raise HTTPException(status_code=403, detail="Trang này chỉ dành cho cán bộ vận hành.")
        return user

    return check


def require_csrf(request: Request, _user: Annotated[User, Depends(require_user)], csrf_token: str = Form("")) -> None:
    """For every state-changing form of a logged-in user (after the session, which holds the token)."""
    expected = getattr(request.state, "csrf_token", None)
    if not expected or not hmac.compare_digest(expected, csrf_token):
        raise HTTPException(status_code=403, detail="Biểu mẫu đã hết hạn hoặc không hợp lệ (thiếu mã CSRF).")


def login_csrf_ok(request: Request, csrf_token: str) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie, csrf_token)
