"""The digitization database: dossiers (`ho_so`), their stored files (`tai_lieu`), and dongbo's own
bookkeeping (`sync_state` per dossier, `service_status` per process, `backfill_window` per range).

The schema evolves only through the Alembic migrations in `shared/db/migrations/`.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _ts(**kwargs) -> Column:
    return Column(DateTime(timezone=True), **kwargs)


class HoSo(SQLModel, table=True):
    """One dossier in the archive, written by the indexer."""

    __tablename__ = "ho_so"

    id: int | None = Field(default=None, primary_key=True)
    mahoso: str = Field(max_length=200, unique=True, index=True)
    madonvi: str = Field(max_length=200, index=True)
    tentochuccanhan: str = Field(default="", sa_type=Text)
    ngaynhan: date | None = Field(default=None, index=True)
    mathutuc: str = Field(default="", max_length=200)
    tenthutuc: str = Field(default="", sa_type=Text)
    file_count: int = Field(default=0)
    state: str = Field(default="indexed", max_length=20)  # indexed | synced
    # The version the row holds: when the fetcher saw it (the order of versions) and its fingerprint.
    fetched_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    source_hash: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    indexed_at: datetime = Field(sa_column=_ts(nullable=False))
    synced_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class TaiLieu(SQLModel, table=True):
    """One stored file of a dossier; `object_key` names it in the bucket."""

    __tablename__ = "tai_lieu"
    __table_args__ = (UniqueConstraint("object_key", name="uq_tai_lieu_object_key"),)

    id: int | None = Field(default=None, primary_key=True)
    ho_so_id: int = Field(
        sa_column=Column(Integer, ForeignKey("ho_so.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    mahoso: str = Field(max_length=200, index=True)
    matailieu: str = Field(max_length=200)
    tentailieu: str = Field(default="", sa_type=Text)
    ten_file: str = Field(default="", sa_type=Text)
    url_file: str = Field(sa_type=Text)
    object_key: str = Field(max_length=1024)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    content_type_mismatch: bool = Field(default=False)
    stored_at: datetime = Field(sa_column=_ts(nullable=False))
    # The version of the dossier that listed it last; a newer version that no longer lists it marks it
    # superseded (when and why) instead of deleting it.
    source_hash: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    superseded_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    superseded_reason: str | None = Field(default=None, sa_type=Text)
    # When the file was reported synced to the one-stop system (`capnhattrangthaidongbofile`).
    reported_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class SyncState(SQLModel, table=True):
    """Where each dossier is in the pipeline and why it stopped, kept after queues forget it."""

    __tablename__ = "sync_state"
    __table_args__ = (Index("ix_sync_state_unit_status", "madonvi", "status"),)

    mahoso: str = Field(max_length=200, primary_key=True)
    madonvi: str = Field(max_length=200)
    # queued → stored → indexed → synced, or failed (see docs/operations.md, "Sync states").
    status: str = Field(max_length=20)
    source_hash: str = Field(default="", max_length=64)
    publish_count: int = Field(default=0)
    attempts: int = Field(default=0)
    last_reason: str | None = Field(default=None, max_length=100)
    last_error: str | None = Field(default=None, sa_type=Text)
    last_error_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    first_seen_at: datetime = Field(sa_column=_ts(nullable=False))
    published_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))
    synced_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class ServiceStatus(SQLModel, table=True):
    """The last sign of life of each service process, for `dongbo status`."""

    __tablename__ = "service_status"

    instance: str = Field(max_length=200, primary_key=True)  # service@host:pid
    service: str = Field(max_length=50, index=True)
    started_at: datetime = Field(sa_column=_ts(nullable=False))
    last_progress_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_error: str | None = Field(default=None, sa_type=Text)
    last_error_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class BackfillWindow(SQLModel, table=True):
    """One finished date window of a backfill, so an interrupted backfill resumes where it stopped."""

    __tablename__ = "backfill_window"

    madonvi: str = Field(max_length=200, primary_key=True)
    tungay: date = Field(primary_key=True)
    denngay: date = Field(primary_key=True)
    dossiers: int = Field(default=0)
    finished_at: datetime = Field(sa_column=_ts(nullable=False))
