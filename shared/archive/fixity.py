"""Fixity audits: read stored objects back, recompute SHA-256 and compare with `tai_lieu`.

Each file's last audit (when, what it found) is kept in `file_audit`, committed file by file. A run
therefore picks only the files that are *due* — never audited, found wrong last time, or last verified
longer ago than `recheck_after` — most overdue first. A run killed half-way loses at most the file it was
reading: the next run skips what it verified. A scheduled run with `--sample` reads a share of the due
files each time, so the whole archive is covered over a cycle without reading everything every night.

Objects in the bucket without a `tai_lieu` row are reported as untracked (listing names costs no reads).
The audit only reads the bucket and `tai_lieu`; it writes nothing but its own bookkeeping.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Engine

from shared.archive.reading import ObjectMissing, TokenBucket, hash_object
from shared.archive.tables import AUDIT_RUN, FILE_AUDIT, HO_SO, TAI_LIEU
from shared.db.integrity_models import CHANGED, MISSING, OK, UNREADABLE
from shared.db.sync_state import insert_for
from shared.errors import StorageUnavailable
from shared.storage.keys import SEGMENT_BYTES, slug
from shared.storage.objects import ObjectStore

log = logging.getLogger(__name__)

UNTRACKED = "untracked"
RESULTS = (OK, CHANGED, MISSING, UNREADABLE)

FILES_AUDITED = Counter("dongbo_audit_files_total", "Files read back by the fixity audit, by result", ["result"])
BYTES_AUDITED = Counter("dongbo_audit_bytes_total", "Bytes read back by the fixity audit")
LAST_RUN = Gauge("dongbo_audit_last_run_timestamp_seconds", "When the last fixity audit run finished")
LAST_RUN_FOUND = Gauge("dongbo_audit_last_run_files", "What the last fixity audit run found, by result", ["result"])

ProgressHook = Callable[[int, str], None]  # (bytes read, object key) after each file


@dataclass(frozen=True)
class AuditOptions:
    madonvi: str | None = None
    since: date | None = None  # only files stored on or after this day
    sample: float = 100.0  # percent of the due files read in this run
    max_rate: float | None = None  # bytes a second
    recheck_after: timedelta = timedelta(days=30)
    untracked: bool = True

    def describe(self) -> str:
        parts = [f"unit={self.madonvi or 'all'}", f"sample={self.sample:g}%",
                 f"recheck_after={self.recheck_after.days}d"]
        if self.since:
            parts.append(f"since={self.since.isoformat()}")
        if self.max_rate:
            parts.append(f"max_rate={self.max_rate / 1e6:g}MB/s")
        return " ".join(parts)


@dataclass
class AuditReport:
    run_id: int
    due: int = 0
    checked: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*RESULTS, UNTRACKED), 0))
    bytes_read: int = 0
    seconds: float = 0.0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def gaps(self) -> int:
        return sum(n for result, n in self.counts.items() if result != OK)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate_mb_s"] = round(self.bytes_read / self.seconds / 1e6, 3) if self.seconds else None
        return data


def _now() -> datetime:
    return datetime.now(UTC)


def due_files(engine: Engine, options: AuditOptions, now: datetime) -> list[dict]:
    """The `tai_lieu` rows to read in this run, most overdue first (never audited before all)."""
    t, h, a = TAI_LIEU, HO_SO, FILE_AUDIT
    query = (
        select(t.c.object_key, t.c.mahoso, t.c.matailieu, t.c.size, t.c.sha256, h.c.madonvi)
        .join(h, h.c.id == t.c.ho_so_id)
        .outerjoin(a, a.c.object_key == t.c.object_key)
        .where(or_(a.c.object_key.is_(None), a.c.result != OK, a.c.audited_at < now - options.recheck_after,
                   a.c.expected_sha256 != t.c.sha256))  # a file stored again since: its new bytes are due
        .order_by(a.c.audited_at.asc().nulls_first(), t.c.id)
    )
    if options.madonvi:
        query = query.where(h.c.madonvi == options.madonvi)
    if options.since:
        query = query.where(t.c.stored_at >= datetime.combine(options.since, datetime.min.time(), UTC))
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
    if options.sample < 100:
        rows = rows[:math.ceil(len(rows) * options.sample / 100)]
    return rows


def audit_one(store: ObjectStore, row: dict, limiter: TokenBucket) -> tuple[str, str | None, int | None, str | None]:
    """(result, sha256 seen, size seen, detail) for one file."""
    try:
        digest = hash_object(store, row["object_key"], limiter)
    except ObjectMissing:
        return MISSING, None, None, "no object in the bucket"
    except StorageUnavailable as exc:
        return UNREADABLE, None, None, str(exc)
    if digest.sha256 != row["sha256"] or digest.size != row["size"]:
        return CHANGED, digest.sha256, digest.size, (f"read {digest.size} bytes hashing to {digest.sha256}; "
                                                      f"tai_lieu says {row['size']} bytes, {row['sha256']}")
    return OK, digest.sha256, digest.size, None


def _record(engine: Engine, row: dict, result: str, sha: str | None, size: int | None, detail: str | None,
            at: datetime) -> None:
    table = FILE_AUDIT
    values = {"mahoso": row["mahoso"], "madonvi": row["madonvi"], "result": result,
              "expected_sha256": row["sha256"], "seen_sha256": sha, "seen_size": size, "detail": detail,
              "audited_at": at}
    if result == OK:
        values["last_ok_at"] = at
    with engine.begin() as connection:
        stmt = insert_for(connection, table).values(object_key=row["object_key"], **values)
        connection.execute(stmt.on_conflict_do_update(index_elements=["object_key"], set_=values))


def untracked_objects(engine: Engine, store: ObjectStore, madonvi: str | None) -> list[str]:
    """Keys in the bucket (under the unit's prefix) that no `tai_lieu` row names."""
    prefix = slug(madonvi, SEGMENT_BYTES) + "/" if madonvi else None
    t = TAI_LIEU
    query = select(t.c.object_key)
    if prefix:
        query = query.where(t.c.object_key.startswith(prefix, autoescape=True))
    with engine.connect() as connection:
        known = set(connection.execute(query).scalars())
    try:
        listed = [o.object_name for o in store.client.list_objects(store.bucket, prefix=prefix, recursive=True)]
    except Exception as exc:
        raise StorageUnavailable(f"object store failed listing {store.bucket}: {type(exc).__name__}") from exc
    return sorted(key for key in listed if key and key not in known)


def run_audit(engine: Engine, store: ObjectStore, options: AuditOptions,
              progress: ProgressHook | None = None, on_due: Callable[[int, int], None] | None = None,
              stopping: threading.Event | None = None) -> AuditReport:
    """One audit run; every file's result is committed as soon as it is known. When `stopping` is set the
    run ends after the file it is reading (the next run picks up the rest)."""
    started, clock = _now(), time.monotonic()
    runs = AUDIT_RUN
    with engine.begin() as connection:
        run_id = connection.execute(runs.insert().values(
            started_at=started, scope=options.describe(), checked=0, ok=0, changed=0, missing=0, unreadable=0,
            untracked=0, bytes_read=0, state="running").returning(runs.c.id)).scalar_one()
    report = AuditReport(run_id=run_id)
    limiter = TokenBucket(options.max_rate)
    state = "failed"
    try:
        rows = due_files(engine, options, started)
        report.due = len(rows)
        if on_due:
            on_due(len(rows), sum(r["size"] for r in rows))
        for row in rows:
            if stopping is not None and stopping.is_set():
                state = "interrupted"
                break
            result, sha, size, detail = audit_one(store, row, limiter)
            _record(engine, row, result, sha, size, detail, _now())
            report.checked += 1
            report.counts[result] += 1
            read = size or 0
            report.bytes_read += read
            FILES_AUDITED.labels(result).inc()
            BYTES_AUDITED.inc(read)
            if result != OK:
                report.problems.append({"result": result, "object_key": row["object_key"], "mahoso": row["mahoso"],
                                        "detail": detail})
                log.warning("audit: %s %s: %s", result, row["object_key"], detail, extra={"mahoso": row["mahoso"]})
            if report.checked % 20 == 0:
                _save(engine, report, "running")
            if progress:
                progress(read, row["object_key"])
        if options.untracked and state != "interrupted":
            for key in untracked_objects(engine, store, options.madonvi):
                report.counts[UNTRACKED] += 1
                report.problems.append({"result": UNTRACKED, "object_key": key, "mahoso": None,
                                        "detail": "an object in the bucket that no tai_lieu row names"})
        state = "finished" if state != "interrupted" else state
    finally:
        report.seconds = time.monotonic() - clock
        _save(engine, report, state)
    LAST_RUN.set(time.time())
    for result, count in report.counts.items():
        LAST_RUN_FOUND.labels(result).set(count)
    return report


def _save(engine: Engine, report: AuditReport, state: str) -> None:
    runs = AUDIT_RUN
    values: dict[str, Any] = {"checked": report.checked, "bytes_read": report.bytes_read, "state": state,
                              "untracked": report.counts[UNTRACKED], **{r: report.counts[r] for r in RESULTS}}
    if state != "running":
        values["finished_at"] = _now()
    with engine.begin() as connection:
        connection.execute(update(runs).where(runs.c.id == report.run_id).values(**values))


def audit_status(engine: Engine, recheck_after: timedelta = timedelta(days=30)) -> dict[str, Any]:
    """What `dongbo status` shows about fixity: the last finished run, every file's last result, and how
    many files are not yet (or no longer recently) verified."""
    runs, audits, files = AUDIT_RUN, FILE_AUDIT, TAI_LIEU
    now = _now()
    with engine.connect() as connection:
        last = connection.execute(select(runs).where(runs.c.state == "finished")
                                  .order_by(runs.c.id.desc()).limit(1)).mappings().first()
        by_result: dict[str, int] = dict(connection.execute(
            select(audits.c.result, func.count()).join(files, files.c.object_key == audits.c.object_key)
            .group_by(audits.c.result)).all())
        total = connection.execute(select(func.count()).select_from(files)).scalar_one()
        current = connection.execute(
            select(func.count()).select_from(files.join(audits, and_(
                audits.c.object_key == files.c.object_key, audits.c.result == OK,
                audits.c.expected_sha256 == files.c.sha256, audits.c.audited_at >= now - recheck_after)))
        ).scalar_one()
        oldest = connection.execute(select(func.min(audits.c.audited_at))).scalar()
    return {
        "files": total,
        "verified_recently": current,
        "due": total - current,
        "last_results": {r: int(by_result.get(r, 0)) for r in RESULTS},
        "oldest_audit": oldest.isoformat() if oldest else None,
        "last_run": None if last is None else {
            "id": last["id"], "started_at": last["started_at"].isoformat(),
            "finished_at": last["finished_at"].isoformat() if last["finished_at"] else None,
            "scope": last["scope"], "checked": last["checked"], "ok": last["ok"], "changed": last["changed"],
            "missing": last["missing"], "unreadable": last["unreadable"], "untracked": last["untracked"],
            "bytes_read": last["bytes_read"]},
    }
