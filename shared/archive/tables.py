"""The tables the archive's checks read, as SQLAlchemy `Table`s (SQLModel does not declare `__table__` to
type checkers, so the one cast lives here)."""

from __future__ import annotations

from sqlalchemy import Table

from shared.db.archive_models import HieuChinh, HoSoVersion
from shared.db.integrity_models import AuditRun, FileAudit, PdfFacts
from shared.db.models import HoSo, SyncState, TaiLieu


def table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined]


HO_SO = table(HoSo)
TAI_LIEU = table(TaiLieu)
SYNC_STATE = table(SyncState)
FILE_AUDIT = table(FileAudit)
AUDIT_RUN = table(AuditRun)
PDF_FACTS = table(PdfFacts)
HO_SO_VERSION = table(HoSoVersion)
HIEU_CHINH = table(HieuChinh)
