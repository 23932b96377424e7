"""The web application's own tables: its accounts (`web_user`), their sessions (`web_session`) and the
archive's access log (`access_log`: every log-in, failed or not, and every view or download of a dossier
or file).

Kept apart from `models.py` so the pipeline's services never load them. The schema changes only through
the migration `0002_web`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, Text
from sqlmodel import Field, SQLModel


def _ts(**kwargs) -> Column:
    return Column(DateTime(timezone=True), **kwargs)


class WebUser(SQLModel, table=True):
    """One official's account. `units` empty means every unit; otherwise a comma-separated list."""

    __tablename__ = "web_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=100, unique=True, index=True)
    password_hash: str = Field(sa_type=Text)
    role: str = Field(max_length=20)  # viewer | operator
    units: str = Field(default="", sa_type=Text)
    disabled: bool = Field(default=False)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    password_changed_at: datetime = Field(sa_column=_ts(nullable=False))


class WebSession(SQLModel, table=True):
    """A logged-in browser. Only the SHA-256 of the cookie's token is stored, so a copy of this table
    does not let anyone log in."""

    __tablename__ = "web_session"

    token_hash: str = Field(max_length=64, primary_key=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("web_user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))


class AccessLog(SQLModel, table=True):
    """One action of one person: login, login-failed, login-throttled, logout, view, preview, download,
    replay."""

    __tablename__ = "access_log"
    __table_args__ = (
        Index("ix_access_log_at", "at"),
        Index("ix_access_log_login", "username", "ip", "at"),
        Index("ix_access_log_mahoso", "mahoso"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_ts(nullable=False))
    username: str = Field(max_length=100)
    action: str = Field(max_length=30)
    ip: str = Field(default="", max_length=64)
    mahoso: str | None = Field(default=None, max_length=200)
    tai_lieu_id: int | None = Field(default=None)
    detail: str = Field(default="", sa_type=Text)
