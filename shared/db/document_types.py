"""The document-type catalog in the archive: copying it from the one-stop system, and the files whose
type it does not know.

A copy upserts every type the catalog lists (`last_seen_at` now, `retired_at` cleared: a type can come
back) and marks retired the ones it no longer lists; no row is ever deleted, since archived files keep
their type's name. An empty catalog retires nothing: it is far likelier a fault than a real catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from shared.db.archive_models import LoaiTaiLieu
from shared.db.models import TaiLieu
from shared.db.sync_state import insert_for
from shared.onestop.models import DocumentType

loai_tai_lieu = LoaiTaiLieu.__table__  # type: ignore[attr-defined]
tai_lieu = TaiLieu.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class CatalogChange:
    """What one copy of the catalog did."""

    listed: int
    retired: int


def store_catalog(engine: Engine, types: Sequence[DocumentType], at: datetime | None = None) -> CatalogChange:
    """Upserts the listed types and retires those no longer listed, in one transaction."""
    at = at or datetime.now(UTC)
    latest = {t.maloaitailieu: t.tenloaitailieu for t in types}  # a code listed twice: its last name
    with engine.begin() as connection:
        if latest:
            stmt = insert_for(connection, loai_tai_lieu)
            rows = [{"maloaitailieu": code, "tenloaitailieu": name, "first_seen_at": at, "last_seen_at": at,
                     "retired_at": None} for code, name in latest.items()]
            connection.execute(stmt.on_conflict_do_update(
                index_elements=["maloaitailieu"],
                set_={"tenloaitailieu": stmt.excluded.tenloaitailieu, "last_seen_at": stmt.excluded.last_seen_at,
                      "retired_at": None},
            ), rows)
        retired = 0
        if latest:
            retired = connection.execute(
                update(loai_tai_lieu)
                .where(loai_tai_lieu.c.retired_at.is_(None), loai_tai_lieu.c.maloaitailieu.not_in(list(latest)))
                .values(retired_at=at)
            ).rowcount or 0
    return CatalogChange(listed=len(latest), retired=retired)


def unknown_document_types(engine: Engine) -> list[tuple[str, int]]:
    """(`matailieu`, number of current files) for each type of a stored file the catalog does not list.

    Empty while the catalog was never copied, so a fresh archive does not call every file unknown.
    """
    with engine.connect() as connection:
        if connection.execute(select(func.count()).select_from(loai_tai_lieu)).scalar_one() == 0:
            return []
        known = select(loai_tai_lieu.c.maloaitailieu)
        rows = connection.execute(
            select(tai_lieu.c.matailieu, func.count())
            .where(tai_lieu.c.superseded_at.is_(None), tai_lieu.c.matailieu.not_in(known))
            .group_by(tai_lieu.c.matailieu)
            .order_by(tai_lieu.c.matailieu)
        )
        return [(matailieu, count) for matailieu, count in rows]
