"""Where an attachment lives: its `url_file`, the stamp that names it, and finding it again from a GET.

A `url_file` looks like the document's:
`{public}/thainguyen/general/public/attach-file/{madonvi}/{yyyy}/{mm}/{dd}/{yyyy_mm_dd_hhmmssfff}!~!{ten_file}`.
The stamp (`yyyy_mm_dd_hhmmssfff`) is unique per file, so it alone identifies the file; the rest of the
path is checked against it. The time of day is derived from the file id with a multiplier coprime to the
milliseconds in a day, which makes stamps unique by construction on any one date.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from datetime import date
from urllib.parse import quote

FILES_PREFIX = "/thainguyen/general/public/attach-file/"
SEPARATOR = "!~!"
MS_PER_DAY = 86_400_000


def make_stamp(day: date, file_id: int, seed: int) -> str:
    ms = (file_id * 31_415_927 + seed * 1_000_003) % MS_PER_DAY
    seconds, millis = divmod(ms, 1000)
    # Plain formatting rather than strftime: this runs for every file of a 200,000-dossier seed.
    hours, minutes = seconds // 3600, seconds // 60 % 60
    return f"{day.year:04d}_{day.month:02d}_{day.day:02d}_{hours:02d}{minutes:02d}{seconds % 60:02d}{millis:03d}"


def url_path(madonvi: str, stamp: str, ten_file: str) -> str:
    """The path part of url_file. The name is percent-encoded (a slash in it becomes %2F); `!~!` stays."""
    yyyy, mm, dd = stamp.split("_")[:3]
    return f"{FILES_PREFIX}{quote(madonvi, safe='')}/{yyyy}/{mm}/{dd}/{stamp}{SEPARATOR}{quote(ten_file, safe='')}"


def url_file(public_url: str, madonvi: str, stamp: str | None, ten_file: str, url_override: str | None) -> str:
    return url_override or public_url + url_path(madonvi, stamp or "", ten_file)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def find(conn: sqlite3.Connection, madonvi: str, yyyy: str, mm: str, dd: str, tail: str) -> sqlite3.Row | None:
    """The file a GET names (the path already percent-decoded), or None.

    The name is compared in NFC: a client that normalizes the name it was given still gets the file.
    Files of the poison kinds `missing` and `forbidden-host` are never served; the file-host kinds
    (`poison.FILE_KINDS`) are, and misbehave in `downloads.py`.
    """
    stamp, sep, name = tail.partition(SEPARATOR)
    if not sep:
        return None
    row = conn.execute(
        "SELECT f.id, f.ten_file, f.size, f.kind, f.sha256, f.matailieu, f.stamp, d.mahoso, d.madonvi FROM file f "
        "JOIN dossier d ON d.id = f.dossier_id WHERE f.stamp = ?",
        (stamp,),
    ).fetchone()
    if row is None or row["kind"] in ("missing", "forbidden-host"):
        return None
    if row["madonvi"] != madonvi or stamp.split("_")[:3] != [yyyy, mm, dd] or _nfc(row["ten_file"]) != _nfc(name):
        return None
    return row


def uploaded_bytes(conn: sqlite3.Connection, file_id: int) -> bytes:
    row = conn.execute("SELECT content FROM upload WHERE file_id = ?", (file_id,)).fetchone()
    return bytes(row[0]) if row else b""


# -- changes through the designed APIs 6-8 ------------------------------------------------------------


def files_of(conn: sqlite3.Connection, dossier_id: int, matailieu: str) -> list[sqlite3.Row]:
    return conn.execute("SELECT id, tentailieu, stamp, url_override FROM file WHERE dossier_id = ? AND matailieu = ? "
                        "ORDER BY id", (dossier_id, matailieu)).fetchall()


def matches(row: sqlite3.Row, url: str | None) -> bool:
    """Does a url_file a client sent back name this file? The stamp is never percent-encoded, so look for it."""
    return url is None or url == row["url_override"] or bool(row["stamp"] and row["stamp"] in url)


def mark_files(conn: sqlite3.Connection, file_ids: list[int]) -> None:
    conn.executemany("UPDATE file SET synced = 1, mark_count = mark_count + 1 WHERE id = ?", [(i,) for i in file_ids])


def delete_files(conn: sqlite3.Connection, dossier_id: int, file_ids: list[int]) -> None:
    """Removes files; the dossier counts as changed, so the no-date sync returns it again."""
    conn.executemany("DELETE FROM upload WHERE file_id = ?", [(i,) for i in file_ids])
    conn.executemany("DELETE FROM file WHERE id = ?", [(i,) for i in file_ids])
    conn.execute("UPDATE dossier SET synced = 0 WHERE id = ?", (dossier_id,))


def add_upload(conn: sqlite3.Connection, dossier_id: int, matailieu: str, tentailieu: str, ten_file: str,
               data: bytes, sha256: str, seed: int) -> str:
    """Stores an uploaded file and returns its stamp (dated today; unique as every stamp is)."""
    cursor = conn.execute(
        "INSERT INTO file (dossier_id, matailieu, tentailieu, ten_file, size, kind, sha256) "
        "VALUES (?, ?, ?, ?, ?, 'uploaded', ?)",
        (dossier_id, matailieu, tentailieu, ten_file, len(data), sha256),
    )
    file_id = cursor.lastrowid
    assert file_id is not None  # an INSERT always sets it
    stamp = make_stamp(date.today(), file_id, seed)
    conn.execute("UPDATE file SET stamp = ? WHERE id = ?", (stamp, file_id))
    conn.execute("INSERT INTO upload (file_id, content) VALUES (?, ?)", (file_id, data))
    conn.execute("UPDATE dossier SET synced = 0 WHERE id = ?", (dossier_id,))
    return stamp
