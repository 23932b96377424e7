"""The archive's own records around the dossiers: the document-type catalog (`loai_tai_lieu`), every
version of a dossier that was ever indexed (`ho_so_version`) and every correction sent back to the one-stop
system (`hieu_chinh`).

`tai_lieu` links to `loai_tai_lieu` by `matailieu` = `maloaitailieu` (a join, not a foreign key: a file of a
type the catalog does not know yet is stored and indexed as usual, and listed so the catalog can be fixed).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _ts(nullable: bool) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable)


class LoaiTaiLieu(SQLModel, table=True):
    """One document type of the one-stop catalog (`danhmucloaitailieu`); kept, marked retired, when it goes."""

    __tablename__ = "loai_tai_lieu"

    id: int | None = Field(default=None, primary_key=True)
    maloaitailieu: str = Field(max_length=200, unique=True, index=True)
    tenloaitailieu: str = Field(default="", sa_type=Text)
    first_seen_at: datetime = Field(sa_column=_ts(False))
    last_seen_at: datetime = Field(sa_column=_ts(False))
    retired_at: datetime | None = Field(default=None, sa_column=_ts(True))


class HoSoVersion(SQLModel, table=True):
    """One version of a dossier as indexed: the same content indexed again adds nothing.

    `version_hash` covers what the one-stop system sent (`source_hash`) and the bytes stored for it (each
    file's key and SHA-256): a vendor who changes a file's bytes under the same `url_file` changes no field
    of the listing, but it is a new version all the same.
    """

    __tablename__ = "ho_so_version"
    __table_args__ = (UniqueConstraint("mahoso", "version_hash", name="uq_ho_so_version"),)

    id: int | None = Field(default=None, primary_key=True)
    mahoso: str = Field(max_length=200, index=True)
    version_hash: str = Field(max_length=64)
    source_hash: str = Field(max_length=64)
    fetched_at: datetime | None = Field(default=None, sa_column=_ts(True))
    recorded_at: datetime = Field(sa_column=_ts(False))
    file_count: int = Field(default=0)
    # The object keys this version lists, as a JSON array: the version's files are one lookup away.
    object_keys: str = Field(default="[]", sa_type=Text)


class HieuChinh(SQLModel, table=True):
    """One correction (`replace` or `delete` of a dossier's file of a type) asked of the one-stop system."""

    __tablename__ = "hieu_chinh"

    id: int | None = Field(default=None, primary_key=True)
    correction_id: str = Field(max_length=64, unique=True, index=True)
    action: str = Field(max_length=10)  # replace | delete
    mahoso: str = Field(max_length=200, index=True)
    madonvi: str = Field(max_length=200)
    matailieu: str = Field(max_length=200)
    ten_file: str = Field(default="", sa_type=Text)
    object_key: str | None = Field(default=None, max_length=1024)  # the replacement's bytes in the archive
    size: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    sha256: str | None = Field(default=None, max_length=64)
    requested_by: str = Field(default="", max_length=200)
    requested_at: datetime = Field(sa_column=_ts(False))
    # queued → applied | refused; `failed` when it was dead-lettered for another reason (replayable).
    status: str = Field(default="queued", max_length=20)
    attempts: int = Field(default=0)
    outcome: str | None = Field(default=None, sa_type=Text)  # what the one-stop system answered
    url_file: str | None = Field(default=None, sa_type=Text)  # the replacement's address there
    finished_at: datetime | None = Field(default=None, sa_column=_ts(True))
