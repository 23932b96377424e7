"""Tables of the archive's proofs: fixity audits (`file_audit`, `audit_run`) and PDF facts (`pdf_facts`).

They sit beside `tai_lieu` rather than in it: a proof is about the bytes stored under an object key, and
writing it must never touch the row the indexer owns. Both are keyed by `object_key`, which `tai_lieu`
keeps unique, so a file's proofs survive the indexer rewriting its row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Text
from sqlmodel import Field, SQLModel

# Results of one file's audit.
OK, CHANGED, MISSING, UNREADABLE = "ok", "changed", "missing", "unreadable"


def _ts(**kwargs) -> Column:
    return Column(DateTime(timezone=True), **kwargs)


class FileAudit(SQLModel, table=True):
    """The last fixity check of one stored object: when, what it found, and the bytes it saw."""

    __tablename__ = "file_audit"

    object_key: str = Field(max_length=1024, primary_key=True)
    mahoso: str = Field(max_length=200, index=True)
    madonvi: str = Field(default="", max_length=200, index=True)
    result: str = Field(max_length=20)  # ok | changed | missing | unreadable
    expected_sha256: str = Field(max_length=64)
    seen_sha256: str | None = Field(default=None, max_length=64)
    seen_size: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    detail: str | None = Field(default=None, sa_type=Text)
    audited_at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    last_ok_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class AuditRun(SQLModel, table=True):
    """One run of `dongbo audit`, for `dongbo status` and the metrics."""

    __tablename__ = "audit_run"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(sa_column=_ts(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    scope: str = Field(default="", sa_type=Text)  # the options it ran with, as text
    checked: int = Field(default=0)
    ok: int = Field(default=0)
    changed: int = Field(default=0)
    missing: int = Field(default=0)
    unreadable: int = Field(default=0)
    untracked: int = Field(default=0)
    bytes_read: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    state: str = Field(default="running", max_length=20)  # running | finished | interrupted | failed


class PdfFacts(SQLModel, table=True):
    """What the inspector read in one stored file: page count, signature, PDF/A claim, or why not a PDF."""

    __tablename__ = "pdf_facts"

    object_key: str = Field(max_length=1024, primary_key=True)
    mahoso: str = Field(max_length=200, index=True)
    sha256: str = Field(max_length=64)  # the bytes these facts are about
    is_pdf: bool = Field(default=False)
    pages: int | None = Field(default=None)
    signed: bool = Field(default=False)
    pdfa: str | None = Field(default=None, max_length=20)  # the claimed part and conformance, e.g. "2B"
    problem: str | None = Field(default=None, sa_type=Text)  # why it is not a readable PDF
    inspected_at: datetime = Field(sa_column=_ts(nullable=False))
