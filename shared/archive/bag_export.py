"""Hand-over packages: one BagIt bag per dossier (RFC 8493, made and validated by the `bagit` library).

Each file is streamed from S3 straight into the bag's `data/` (one chunk in memory), hashed on the way and
compared with the SHA-256 recorded in `tai_lieu`: a file whose bytes differ from the record is not
exported (the dossier fails, naming it), so `manifest-sha256.txt` always equals the recorded hashes.
Files keep their Vietnamese names (NFC, without path separators or control characters, made unique).
The dossier's metadata (Nghị định 30/2020, Phụ lục VI) goes into `bag-info.txt` and `metadata.json`.

A bag is assembled under a hidden temporary name and renamed when complete, so a killed export never
leaves a half-bag that looks finished; an existing bag is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from shared.archive.reading import stream_object
from shared.archive.tables import HO_SO, PDF_FACTS, TAI_LIEU
from shared.storage.keys import SEGMENT_BYTES, slug
from shared.storage.objects import ObjectStore

NAME_BYTES = 200
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")
LANGUAGE = "vi"


class ExportMismatch(Exception):
    """A stored object's bytes do not hash to what `tai_lieu` records."""


@dataclass
class ExportReport:
    bags: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # a bag of that name was there already
    failed: dict[str, str] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0


def safe_name(name: str, fallback: str) -> str:
    """A file name for the bag: the original Vietnamese name in NFC, with nothing that could leave `data/`."""
    text = _UNSAFE.sub("_", unicodedata.normalize("NFC", name or "")).strip(" .")
    text = " ".join(text.split())
    if not any(ch.isalnum() for ch in text):  # nothing left of the name but separators
        text = fallback
    encoded = text.encode("utf-8")
    if len(encoded) > NAME_BYTES:
        stem, dot, ext = text.rpartition(".")
        suffix = f".{ext}" if dot and len(ext) <= 10 else ""
        room = NAME_BYTES - len(suffix.encode("utf-8"))
        stem = (stem if suffix else text).encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .")
        text = stem + suffix
    return text


def unique_names(names: list[str]) -> list[str]:
    """`a.pdf`, `a.pdf` → `a.pdf`, `a (2).pdf`; compared case-insensitively (archive file systems may be)."""
    taken: set[str] = set()
    result = []
    for name in names:
        candidate, n = name, 1
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{stem} ({n}).{ext}" if ext else f"{name} ({n})"
        taken.add(candidate.casefold())
        result.append(candidate)
    return result


def dossiers_in(engine: Engine, madonvi: str, start: date, end: date) -> list[dict]:
    h = HO_SO
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(
            select(h).where(h.c.madonvi == madonvi, h.c.ngaynhan >= start, h.c.ngaynhan <= end)
            .order_by(h.c.ngaynhan, h.c.mahoso)).mappings()]


def files_of(engine: Engine, dossier_id: int) -> list[dict]:
    t, f = TAI_LIEU, PDF_FACTS
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(
            select(t, f.c.pages, f.c.is_pdf, f.c.sha256.label("facts_sha256"))
            .outerjoin(f, f.c.object_key == t.c.object_key)
            .where(t.c.ho_so_id == dossier_id).order_by(t.c.matailieu, t.c.id)).mappings()]


def metadata_of(dossier: dict, files: list[dict], names: list[str]) -> dict[str, Any]:
    pages = [f["pages"] if f["facts_sha256"] == f["sha256"] else None for f in files]
    return {
        "mahoso": dossier["mahoso"],
        "madonvi": dossier["madonvi"],
        "mathutuc": dossier["mathutuc"],
        "tenthutuc": dossier["tenthutuc"],
        "tentochuccanhan": dossier["tentochuccanhan"],
        "ngaynhan": dossier["ngaynhan"].strftime("%d/%m/%Y") if dossier["ngaynhan"] else None,
        "language": LANGUAGE,
        "document_count": len(files),
        # Known only when the inspector has read every file; a partial sum would understate it.
        "page_total": sum(p for p in pages if p is not None) if all(p is not None for p in pages) else None,
        "files": [{"matailieu": f["matailieu"], "tentailieu": f["tentailieu"], "ten_file": f["ten_file"],
                   "path": f"data/{name}", "content_type": f["content_type"], "size": f["size"],
                   "sha256": f["sha256"], "pages": p, "stored_at": f["stored_at"].isoformat()}
                  for f, name, p in zip(files, names, pages, strict=True)],
    }


def bag_info_of(meta: dict[str, Any]) -> dict[str, str]:
    info = {
        "External-Identifier": meta["mahoso"],
        "External-Description": f"{meta['tenthutuc']} — {meta['tentochuccanhan']}",
        "Source-Organization": meta["madonvi"],
        "Ma-Ho-So": meta["mahoso"],
        "Ma-Don-Vi": meta["madonvi"],
        "Ma-Thu-Tuc": meta["mathutuc"],
        "Ten-Thu-Tuc": meta["tenthutuc"],
        "To-Chuc-Ca-Nhan": meta["tentochuccanhan"],
        "Ngay-Nhan": meta["ngaynhan"] or "",
        "So-Luong-Tai-Lieu": str(meta["document_count"]),
        "Tong-So-Trang": "" if meta["page_total"] is None else str(meta["page_total"]),
        "Ngon-Ngu": meta["language"],
    }
    # bag-info.txt is one line per field: a line break inside a value would start a new field.
    return {k: " ".join(v.split()) for k, v in info.items()}


def _copy_verified(store: ObjectStore, row: dict, target: Path) -> int:
    sha, size = hashlib.sha256(), 0
    with open(target, "wb") as out:
        for chunk in stream_object(store, row["object_key"]):
            sha.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if sha.hexdigest() != row["sha256"] or size != row["size"]:
        raise ExportMismatch(f"{row['object_key']}: {size} bytes hashing to {sha.hexdigest()}, tai_lieu records "
                             f"{row['size']} bytes, {row['sha256']}")
    return size


def export_dossier(engine: Engine, store: ObjectStore, dossier: dict, out_dir: Path) -> tuple[Path, int, int] | None:
    """Writes one bag; returns (path, files, bytes), or None when a bag of that name exists already."""
    import bagit

    final = out_dir / slug(dossier["mahoso"], SEGMENT_BYTES)
    if final.exists():
        return None
    staging = out_dir / f".partial-{final.name}"
    if staging.exists():
        shutil.rmtree(staging)  # what a killed export left
    staging.mkdir(parents=True)
    try:
        files = files_of(engine, dossier["id"])
        names = unique_names([safe_name(f["ten_file"], f"{slug(f['matailieu'], 80)}.bin") for f in files])
        total = 0
        for row, name in zip(files, names, strict=True):
            total += _copy_verified(store, row, staging / name)
        meta = metadata_of(dossier, files, names)
        bag = bagit.make_bag(str(staging), bag_info_of(meta), processes=1, checksums=["sha256"])
        recorded = {f"data/{name}": row["sha256"] for row, name in zip(files, names, strict=True)}
        made = {path: hashes["sha256"] for path, hashes in bag.entries.items() if path.startswith("data/")}
        if made != recorded:  # the manifest must be the record, not merely what the disk holds now
            raise ExportMismatch(f"{dossier['mahoso']}: the bag's manifest differs from tai_lieu")
        (staging / "metadata.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        bag.save(manifests=False)  # adds metadata.json to the tag manifest
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final, len(files), total


def export_window(engine: Engine, store: ObjectStore, madonvi: str, start: date, end: date, out_dir: Path,
                  on_dossier: Callable[[str], None] | None = None) -> ExportReport:
    from shared.errors import DongboError

    out_dir.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    for dossier in dossiers_in(engine, madonvi, start, end):
        try:
            made = export_dossier(engine, store, dossier, out_dir)
        except (ExportMismatch, DongboError, OSError) as exc:
            report.failed[dossier["mahoso"]] = str(exc)
        except Exception as exc:  # bagit raises its own kinds; one dossier's failure must not stop the rest
            report.failed[dossier["mahoso"]] = f"{type(exc).__name__}: {exc}"
        else:
            if made is None:
                report.skipped.append(dossier["mahoso"])
            else:
                report.bags.append(str(made[0]))
                report.files += made[1]
                report.bytes += made[2]
        if on_dossier:
            on_dossier(dossier["mahoso"])
    return report
