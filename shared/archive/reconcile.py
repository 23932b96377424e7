"""Reconciliation of one unit's window with the one-stop system: what it lists against what the database
and the bucket hold (rclone's `check`, for dossiers).

The date-range sync call lists every dossier of the window, synced or not, so it is the reference: a
window that a backfill brought in completely has no gap. Gaps are
- `missing-dossier`: listed there, no `ho_so` row here;
- `files-differ`: the dossier's files differ (a file listed there without a row here, or a row here for a
  file no longer listed; `url_file` and `matailieu` identify a file, the sync call gives no sizes);
- `object-missing`: a `tai_lieu` row whose object is not in the bucket;
- `object-changed`: an object whose size or recorded `sha256` tag differs from its row (with `rehash`,
  whose recomputed SHA-256 differs).
Nothing is written: the database and the bucket are only read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from itertools import islice
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from shared.archive.reading import ObjectMissing, TokenBucket, hash_object, stat_object
from shared.archive.tables import HO_SO, TAI_LIEU
from shared.onestop.models import Dossier, InvalidDossier
from shared.storage.objects import ObjectStore

MISSING_DOSSIER, FILES_DIFFER, OBJECT_MISSING, OBJECT_CHANGED = (
    "missing-dossier", "files-differ", "object-missing", "object-changed")
KINDS = (MISSING_DOSSIER, FILES_DIFFER, OBJECT_MISSING, OBJECT_CHANGED)
CHUNK = 200


@dataclass
class Gap:
    kind: str
    mahoso: str
    detail: str
    object_key: str | None = None


@dataclass
class Report:
    madonvi: str
    start: date
    end: date
    listed: int = 0
    malformed: int = 0
    in_archive: int = 0
    files_checked: int = 0
    gaps: list[Gap] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for gap in self.gaps:
            counts[gap.kind] += 1
        return counts

    def dossiers_to_requeue(self) -> list[str]:
        """Every dossier with a gap: storing it again closes each kind (the downloader re-stores a missing
        or changed object, the indexer rewrites the rows)."""
        return list(dict.fromkeys(gap.mahoso for gap in self.gaps))

    def as_dict(self) -> dict[str, Any]:
        return {"madonvi": self.madonvi, "from": self.start.strftime("%d/%m/%Y"), "to": self.end.strftime("%d/%m/%Y"),
                "listed": self.listed, "malformed": self.malformed, "in_archive": self.in_archive,
                "files_checked": self.files_checked, "gaps": self.counts(), "total_gaps": len(self.gaps),
                "details": [asdict(gap) for gap in self.gaps], "requeued": self.requeued}


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def reconcile(listing: Iterable[Dossier | InvalidDossier], engine: Engine, store: ObjectStore, report: Report, *,
              rehash: bool = False, limiter: TokenBucket | None = None,
              on_dossier: Callable[[int], None] | None = None) -> dict[str, Dossier]:
    """Fills `report` from the one-stop system's `listing`; returns the listed dossiers by `mahoso`
    (those with gaps are what `--requeue` hands on)."""
    listed: dict[str, Dossier] = {}
    for chunk in _chunks(listing, CHUNK):
        dossiers = []
        for item in chunk:
            if isinstance(item, InvalidDossier):
                report.malformed += 1
            else:
                dossiers.append(item)
        unique = {d.mahoso: d for d in dossiers}
        listed.update(unique)
        report.listed += len(unique)
        rows = _rows_of(engine, list(unique))
        for mahoso, dossier in unique.items():
            _compare(dossier, rows.get(mahoso), store, report, rehash, limiter)
        if on_dossier:
            on_dossier(len(chunk))
    return listed


def _rows_of(engine: Engine, mahosos: list[str]) -> dict[str, tuple[dict, list[dict]]]:
    ho_so, tai_lieu = HO_SO, TAI_LIEU
    with engine.connect() as connection:
        dossiers = {row["mahoso"]: dict(row) for row in connection.execute(
            select(ho_so).where(ho_so.c.mahoso.in_(mahosos))).mappings()}
        files: dict[str, list[dict]] = {}
        for row in connection.execute(select(tai_lieu).where(tai_lieu.c.mahoso.in_(mahosos))).mappings():
            files.setdefault(row["mahoso"], []).append(dict(row))
    return {m: (d, files.get(m, [])) for m, d in dossiers.items()}


def _compare(dossier: Dossier, held: tuple[dict, list[dict]] | None, store: ObjectStore, report: Report,
             rehash: bool, limiter: TokenBucket | None) -> None:
    mahoso = dossier.mahoso
    if held is None:
        report.gaps.append(Gap(MISSING_DOSSIER, mahoso, f"listed by the one-stop system with "
                                                        f"{len(dossier.file_dinh_kem)} file(s), not in ho_so"))
        return
    report.in_archive += 1
    _, rows = held
    there = {(f.matailieu, f.url_file) for f in dossier.file_dinh_kem}
    here = {(r["matailieu"], r["url_file"]) for r in rows}
    if there != here:
        absent = sorted(there - here)
        extra = sorted(here - there)
        parts = [f"{len(there)} file(s) there, {len(here)} here"]
        if absent:
            parts.append("not here: " + ", ".join(f"{m} {u}" for m, u in absent[:5]))
        if extra:
            parts.append("no longer there: " + ", ".join(f"{m} {u}" for m, u in extra[:5]))
        report.gaps.append(Gap(FILES_DIFFER, mahoso, "; ".join(parts)))
    for row in rows:
        report.files_checked += 1
        gap = check_object(store, row, rehash, limiter)
        if gap is not None:
            report.gaps.append(gap)


def check_object(store: ObjectStore, row: dict, rehash: bool = False, limiter: TokenBucket | None = None) -> Gap | None:
    """Whether the object of a `tai_lieu` row is there with the bytes the row records."""
    key, mahoso = row["object_key"], row["mahoso"]
    state = stat_object(store, key)
    if state is None:
        return Gap(OBJECT_MISSING, mahoso, f"{row['matailieu']}: no object in the bucket", key)
    if state.size != row["size"]:
        return Gap(OBJECT_CHANGED, mahoso, f"{row['matailieu']}: {state.size} bytes, the row says {row['size']}", key)
    if state.tagged_sha256 != row["sha256"]:
        # Any write to the key since it was stored (even with the same size) drops or changes the tag.
        said = state.tagged_sha256 or "no sha256 tag"
        return Gap(OBJECT_CHANGED, mahoso, f"{row['matailieu']}: the object is tagged {said}, the row says "
                                           f"{row['sha256']}", key)
    if rehash:
        try:
            digest = hash_object(store, key, limiter) if limiter else hash_object(store, key)
        except ObjectMissing:
            return Gap(OBJECT_MISSING, mahoso, f"{row['matailieu']}: no object in the bucket", key)
        if digest.sha256 != row["sha256"]:
            return Gap(OBJECT_CHANGED, mahoso, f"{row['matailieu']}: its bytes hash to {digest.sha256}, the row "
                                               f"says {row['sha256']}", key)
    return None
