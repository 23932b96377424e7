"""What each page reads from the database: the search, a dossier with its files and journey, the
dashboard's numbers, the access log. Every query that returns dossiers or files is limited to the
user's units here, once, so a route cannot forget it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Date, and_, cast, func, literal_column, or_, select
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from services.web.accounts import User
from services.web.folding import fold, folded_sql, like_pattern
from shared.db.models import HoSo, ServiceStatus, SyncState, TaiLieu
from shared.db.web_models import AccessLog

ho_so, tai_lieu, sync_state, service_status, access_log = (
    SQLModel.metadata.tables[model.__tablename__] for model in (HoSo, TaiLieu, SyncState, ServiceStatus, AccessLog))
PAGE_SIZE = 20
COUNT_CAP = 10_000  # beyond this the page says "more than 10 000": counting everything would cost more
IN_FLIGHT = ("queued", "stored", "indexed")


def aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite returns naive UTC datetimes
        return value.replace(tzinfo=UTC)
    return value


def _folded_name(connection: Connection):
    if connection.dialect.name == "postgresql":
        # Must be the very expression migration 0002 indexed.
        return literal_column(folded_sql("ho_so.tentochuccanhan"))
    return func.dongbo_fold(ho_so.c.tentochuccanhan)  # registered on SQLite connections by the app


def _units(user: User, column):
    return column.in_(user.units) if user.units else None


@dataclass
class SearchForm:
    q: str = ""
    unit: str = ""
    procedure: str = ""
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1


def search(connection: Connection, user: User, form: SearchForm) -> tuple[list[dict], int]:
    """One page of dossiers, newest received first, and how many match (capped at COUNT_CAP + 1)."""
    conditions = []
    if (limit := _units(user, ho_so.c.madonvi)) is not None:
        conditions.append(limit)
    q = form.q.strip()
    if q:
        by_code = ho_so.c.mahoso.like(like_pattern(q) + "%", escape="\\")
        folded = fold(q)
        by_name = _folded_name(connection).like("%" + like_pattern(folded) + "%", escape="\\")
        conditions.append(or_(by_code, by_name) if folded else by_code)
    if form.unit:
        conditions.append(ho_so.c.madonvi == form.unit)
    if form.procedure:
        conditions.append(ho_so.c.mathutuc == form.procedure)
    if form.date_from:
        conditions.append(ho_so.c.ngaynhan >= form.date_from)
    if form.date_to:
        conditions.append(ho_so.c.ngaynhan <= form.date_to)
    where = and_(True, *conditions)
    rows = connection.execute(
        select(ho_so.c.id, ho_so.c.mahoso, ho_so.c.madonvi, ho_so.c.tentochuccanhan, ho_so.c.ngaynhan,
               ho_so.c.tenthutuc, ho_so.c.file_count, ho_so.c.state)
        .where(where).order_by(ho_so.c.ngaynhan.desc().nulls_last(), ho_so.c.id.desc())
        .limit(PAGE_SIZE).offset((max(form.page, 1) - 1) * PAGE_SIZE)).mappings().all()
    total = connection.execute(
        select(func.count()).select_from(select(ho_so.c.id).where(where).limit(COUNT_CAP + 1).subquery())).scalar()
    return [dict(r) for r in rows], int(total or 0)


def procedures(connection: Connection) -> list[tuple[str, str]]:
    """The procedures the archive holds (code, name): the choices of the search form's procedure list."""
    rows = connection.execute(select(ho_so.c.mathutuc, func.max(ho_so.c.tenthutuc)).group_by(ho_so.c.mathutuc)
                              .order_by(ho_so.c.mathutuc).limit(1000))
    return [(code, name) for code, name in rows if code]


def archive_units(connection: Connection) -> list[str]:
    return sorted(connection.execute(select(ho_so.c.madonvi).distinct()).scalars())


def dossier(connection: Connection, user: User, dossier_id: int) -> dict | None:
    """The dossier when it exists and the user may see it; None otherwise (the page answers 404 for both)."""
    query = select(ho_so).where(ho_so.c.id == dossier_id)
    if (limit := _units(user, ho_so.c.madonvi)) is not None:
        query = query.where(limit)
    row = connection.execute(query).mappings().first()
    return None if row is None else dict(row)


def files_of(connection: Connection, dossier_id: int) -> list[dict]:
    return [dict(r) for r in connection.execute(
        select(tai_lieu).where(tai_lieu.c.ho_so_id == dossier_id).order_by(tai_lieu.c.matailieu, tai_lieu.c.id)
    ).mappings()]


def file_for(connection: Connection, user: User, file_id: int) -> dict | None:
    """A file with its dossier's unit, when the user may see that unit."""
    query = (select(tai_lieu, ho_so.c.madonvi).select_from(tai_lieu.join(ho_so, tai_lieu.c.ho_so_id == ho_so.c.id))
             .where(tai_lieu.c.id == file_id))
    if (limit := _units(user, ho_so.c.madonvi)) is not None:
        query = query.where(limit)
    row = connection.execute(query).mappings().first()
    return None if row is None else dict(row)


def journey(connection: Connection, record: dict, files: list[dict]) -> tuple[list[dict], dict | None]:
    """The dossier's steps with their times, and its sync_state row (attempts, last reason and error)."""
    state = connection.execute(select(sync_state).where(sync_state.c.mahoso == record["mahoso"])).mappings().first()
    stored = max((f["stored_at"] for f in files), default=None)
    steps = [
        ("Lấy từ hệ thống một cửa", aware(record.get("fetched_at")) or (state and aware(state["first_seen_at"]))),
        ("Đưa vào hàng đợi", state and aware(state["published_at"])),
        ("Lưu tệp vào kho", aware(stored)),
        ("Ghi vào cơ sở dữ liệu", aware(record.get("indexed_at"))),
        ("Báo đã đồng bộ cho hệ thống một cửa", aware(record.get("synced_at"))),
    ]
    return [{"label": label, "at": at} for label, at in steps], (dict(state) if state else None)


def access_of(connection: Connection, mahoso: str, limit: int = 20) -> list[dict]:
    return [dict(r) for r in connection.execute(
        select(access_log).where(access_log.c.mahoso == mahoso).order_by(access_log.c.at.desc()).limit(limit)
    ).mappings()]


# -- the dashboard ----------------------------------------------------------------------------------


def _day(connection: Connection, column):
    if connection.dialect.name == "postgresql":
        # The day in the server's local time zone setting would shift days: count in UTC, as the page says.
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def dashboard(connection: Connection, user: User, configured_units: list[str], now: datetime) -> dict:
    """Per unit: synced today / last 7 days / in all, in flight, parked by reason, last dossier seen;
    and dossiers synced per day over the last 30 days (UTC days).

    Each number is one query per unit on an index of migration 0002 ((madonvi, synced_at),
    (madonvi, first_seen_at), the partial index of unsynced rows), so the page costs the same with
    200,000 dossiers as with 200.
    """
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    month = today - timedelta(days=29)
    days = [(month + timedelta(days=n)).date().isoformat() for n in range(30)]
    week = set(days[-7:])
    names = set(configured_units)
    limit_state = _units(user, sync_state.c.madonvi)
    unsynced = select(sync_state.c.madonvi, sync_state.c.status, sync_state.c.last_reason, func.count()).where(
        sync_state.c.status != "synced").group_by(sync_state.c.madonvi, sync_state.c.status, sync_state.c.last_reason)
    if limit_state is not None:
        unsynced = unsynced.where(limit_state)
    unsynced_rows = connection.execute(unsynced).all()
    names.update(row[0] for row in unsynced_rows)
    if not names:  # nothing configured: the units the archive knows
        names.update(connection.execute(select(ho_so.c.madonvi).distinct()).scalars())
    units: dict[str, dict] = {}
    day = _day(connection, ho_so.c.synced_at)
    for name in sorted(n for n in names if user.sees(n)):
        per_day = {(when if isinstance(when, str) else when.isoformat()): count for when, count in connection.execute(
            select(day, func.count()).where(ho_so.c.madonvi == name, ho_so.c.synced_at >= month).group_by(day))}
        total = connection.execute(select(func.count()).where(ho_so.c.madonvi == name,
                                                              ho_so.c.synced_at.is_not(None))).scalar()
        last_seen = connection.execute(select(func.max(sync_state.c.first_seen_at)).where(
            sync_state.c.madonvi == name)).scalar()
        units[name] = {"today": per_day.get(days[-1], 0), "week": sum(n for d, n in per_day.items() if d in week),
                       "all": total or 0, "in_flight": 0, "parked": 0, "reasons": {}, "last_seen": aware(last_seen),
                       "days": per_day}
    for madonvi, status, reason, count in unsynced_rows:
        if madonvi not in units:
            continue
        entry = units[madonvi]
        if status in IN_FLIGHT:
            entry["in_flight"] += count
        elif status == "failed":
            entry["parked"] += count
            entry["reasons"][reason or "không rõ"] = entry["reasons"].get(reason or "không rõ", 0) + count
    last_poll = connection.execute(select(func.max(service_status.c.last_progress_at)).where(
        service_status.c.service == "fetcher")).scalar()
    return {"units": units, "days": days, "last_poll": aware(last_poll), "today": days[-1]}


def access_entries(connection: Connection, username: str = "", action: str = "", mahoso: str = "",
                   page: int = 1, size: int = 50) -> list[dict]:
    query = select(access_log)
    if username:
        query = query.where(access_log.c.username == username)
    if action:
        query = query.where(access_log.c.action == action)
    if mahoso:
        query = query.where(access_log.c.mahoso == mahoso)
    return [dict(r) for r in connection.execute(
        query.order_by(access_log.c.at.desc(), access_log.c.id.desc()).limit(size).offset((max(page, 1) - 1) * size)
    ).mappings()]
