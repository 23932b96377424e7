"""Poisoned dossiers: what a careless vendor or an attacker may put in the one-stop answer or its file host.

Each kind poisons one dossier (and, for the file-host kinds, its first file). A kind is chosen per dossier
at seed time (`--poison N --poison-kinds K1,K2,...`) or at run time (`POST /_sim/dossiers/{mahoso}/poison`
with `{"kind": K}`; `{"kind": null}` heals what can be healed). Kinds take effect in one of three places:

- stored: the change is written to the state file, so `/_sim/dossiers` shows exactly what is served and a
  mark counts under the code served (bad-date, nul-mahoso, long-field, item-too-large, too-many-files,
  missing-file, forbidden-host, and the file-host kinds on the file's `kind`);
- rendered: the sync answer is altered as it is written (nul-madonvi, control-chars, huge-field, deep);
  `/_sim/dossiers` shows the dossier as stored, with `poison` naming what the answer carries instead;
- served by the file endpoint (FILE_KINDS): the file's GET misbehaves.

`deep` is written as JSON text, never built as a Python structure: no code here (or in json.dumps) has to
recurse through thousands of levels.
"""

from __future__ import annotations

import gzip
import math
import sqlite3
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from urllib.parse import quote

from services.onestop_sim import attachments, content, vocab

LEGACY_KINDS = ("bad-date", "missing-file", "forbidden-host")
DOSSIER_KINDS = ("nul-mahoso", "nul-madonvi", "control-chars", "deep", "huge-field", "long-field",
                 "item-too-large", "too-many-files")
FILE_KINDS = ("redirect-bomb", "gzip-bomb", "drip", "bad-location", "redirect-forbidden")
KINDS = LEGACY_KINDS + DOSSIER_KINDS + FILE_KINDS
RENDERED = frozenset({"nul-madonvi", "control-chars", "deep", "huge-field"})
# What dongbo must dead-letter each kind as (README, "Dead-letter reasons"); for the tests and the docs.
REASONS = {
    "bad-date": "malformed-dossier", "missing-file": "file-not-found", "forbidden-host": "forbidden-host",
    "nul-mahoso": "malformed-dossier", "nul-madonvi": "malformed-dossier", "control-chars": "malformed-dossier",
    "deep": "malformed-dossier", "huge-field": "field-too-long", "long-field": "field-too-long",
    "item-too-large": "dossier-too-large", "too-many-files": "too-many-files",
    "redirect-bomb": "redirect-loop", "gzip-bomb": "file-too-large", "drip": "file-too-slow",
    "bad-location": "file-refused", "redirect-forbidden": "forbidden-host",
}
FORBIDDEN_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"  # cloud metadata: never fetch
BAD_DATE = "32/13/2020"
# A Location header of raw bytes that no UTF-8 text holds (0xE9 alone is Latin-1 "é").
BAD_LOCATION = b"/caf\xe9.pdf"
# Text used to fill fields: three UTF-8 bytes a character, so few characters make many bytes.
FILL_CHAR = "ệ"
# item-too-large spreads its bytes over files' `tentailieu`, each kept under the default field limit (4000).
FILL_CHARS_PER_FIELD = 3000
GZIP_MEMBER = 16 * 1024**2


@dataclass(frozen=True)
class PoisonSizes:
    """How big the poison is. The defaults beat dongbo's default limits; a test that lowers a limit passes
    smaller sizes so that a poisoned dossier stays cheap."""

    field_chars: int = 5000  # long-field: characters of tentochuccanhan (DONGBO_MAX_FIELD_CHARS is 4000)
    item_bytes: int = 4_718_592  # item-too-large: at least this many bytes of text (DONGBO_MAX_ITEM_BYTES, 4 MiB)
    files: int = 501  # too-many-files: files listed (DONGBO_MAX_FILES_PER_DOSSIER is 500)
    huge_bytes: int = 20_000_000  # huge-field: bytes of tenthutuc, over the broker's 16 MiB message limit
    depth: int = 5000  # deep: levels of nesting
    bomb_bytes: int = 3 * 1024**3  # gzip-bomb: decoded size (over the default 2 GiB file limit)
    redirect_bomb_bytes: int = 1024**3  # redirect-bomb: decoded size of each redirect's body
    drip_seconds: float = 1.0  # drip: one byte every this many seconds


def check_kind(kind) -> str | None:
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown poison kind {kind!r}; known: {', '.join(KINDS)}")
    return kind


def parse_kinds(text: str) -> tuple[str, ...]:
    """`--poison-kinds`: a comma-separated list, or `all`."""
    if text.strip() == "all":
        return KINDS
    kinds = tuple(part.strip() for part in text.split(",") if part.strip())
    for kind in kinds:
        check_kind(kind)
    if not kinds:
        raise ValueError("no poison kinds given")
    return kinds


# -- stored kinds ---------------------------------------------------------------------------------------


def apply(conn: sqlite3.Connection, dossier_id: int, kind: str | None, sizes: PoisonSizes, seed: int) -> None:
    """Poisons one dossier with `kind` (None heals), inside the caller's transaction. The dossier loses its
    synced mark, so the no-date sync offers it again."""
    check_kind(kind)
    _heal(conn, dossier_id)
    row = conn.execute("SELECT mahoso FROM dossier WHERE id = ?", (dossier_id,)).fetchone()
    first = conn.execute("SELECT id, stamp, ten_file FROM file WHERE dossier_id = ? ORDER BY id LIMIT 1",
                         (dossier_id,)).fetchone()
    conn.execute("UPDATE dossier SET poison = ?, synced = 0 WHERE id = ?", (kind, dossier_id))
    if kind == "bad-date":
        conn.execute("UPDATE dossier SET ngaynhan = ?, ngaynhan_iso = NULL WHERE id = ?", (BAD_DATE, dossier_id))
    elif kind == "nul-mahoso":
        mahoso = row[0]
        conn.execute("UPDATE dossier SET mahoso = ? WHERE id = ?", (mahoso[:-4] + "\x00" + mahoso[-4:], dossier_id))
    elif kind == "long-field":
        conn.execute("UPDATE dossier SET tentochuccanhan = ? WHERE id = ?", (_fill("NGUYỄN VĂN ", sizes.field_chars),
                                                                             dossier_id))
    elif kind == "item-too-large":
        _make_large(conn, dossier_id, sizes.item_bytes, seed)
    elif kind == "too-many-files":
        count = conn.execute("SELECT count(*) FROM file WHERE dossier_id = ?", (dossier_id,)).fetchone()[0]
        for n in range(count, sizes.files):
            matailieu, tentailieu = vocab.DOCUMENT_TYPES[n % len(vocab.DOCUMENT_TYPES)]
            _add_file(conn, dossier_id, matailieu, tentailieu, f"Phụ lục {n + 1}.pdf", seed)
    elif first is not None and kind == "forbidden-host":
        url = f"{FORBIDDEN_URL}{first['stamp']}{attachments.SEPARATOR}{quote(first['ten_file'], safe='')}"
        conn.execute("UPDATE file SET kind = 'forbidden-host', url_override = ? WHERE id = ?", (url, first["id"]))
    elif first is not None and (kind == "missing-file" or kind in FILE_KINDS):
        conn.execute("UPDATE file SET kind = ? WHERE id = ?", ("missing" if kind == "missing-file" else kind,
                                                              first["id"]))
    # The page text holds the mahoso: cached hashes of this dossier's files may be stale now.
    conn.execute("UPDATE file SET sha256 = NULL WHERE dossier_id = ? AND kind != 'uploaded'", (dossier_id,))


def _heal(conn: sqlite3.Connection, dossier_id: int) -> None:
    """Undoes what can be undone: codes, dates and files served again. Long text and added files stay (their
    recovery is raising dongbo's limit, not a change at the source)."""
    # In Python, not SQL: SQLite's string functions stop at a NUL.
    mahoso = conn.execute("SELECT mahoso FROM dossier WHERE id = ?", (dossier_id,)).fetchone()[0]
    conn.execute("UPDATE dossier SET mahoso = ?, poison = NULL WHERE id = ?", (mahoso.replace("\x00", ""), dossier_id))
    bad = conn.execute("SELECT ngaynhan FROM dossier WHERE id = ?", (dossier_id,)).fetchone()[0] == BAD_DATE
    if bad:
        stamp = conn.execute("SELECT min(stamp) FROM file WHERE dossier_id = ?", (dossier_id,)).fetchone()[0]
        day = date(*map(int, stamp.split("_")[:3])) if stamp else date(2020, 1, 1)
        conn.execute("UPDATE dossier SET ngaynhan = ?, ngaynhan_iso = ? WHERE id = ?",
                     (f"{day.day:02d}/{day.month:02d}/{day.year:04d}", day.isoformat(), dossier_id))
    conn.execute("UPDATE file SET kind = 'generated', url_override = NULL WHERE dossier_id = ? "
                 "AND kind NOT IN ('generated', 'uploaded')", (dossier_id,))


def _fill(prefix: str, chars: int) -> str:
    return (prefix + FILL_CHAR * chars)[:chars]


def _add_file(conn: sqlite3.Connection, dossier_id: int, matailieu: str, tentailieu: str, ten_file: str,
              seed: int) -> None:
    cursor = conn.execute("INSERT INTO file (dossier_id, matailieu, tentailieu, ten_file, size, kind) "
                          "VALUES (?, ?, ?, ?, ?, 'generated')",
                          (dossier_id, matailieu, tentailieu, ten_file, content.MIN_SIZE))
    file_id = cursor.lastrowid or 0
    day = date(2024, 12, 31)  # fixed, so the stamp (and the file's bytes) follow from the seed alone
    conn.execute("UPDATE file SET stamp = ? WHERE id = ?", (attachments.make_stamp(day, file_id, seed), file_id))


def _make_large(conn: sqlite3.Connection, dossier_id: int, item_bytes: int, seed: int) -> None:
    """At least `item_bytes` bytes of `tentailieu` text, no field over FILL_CHARS_PER_FIELD characters:
    the item is too large as a whole while each field is within the default field limit."""
    per_field = FILL_CHARS_PER_FIELD * len(FILL_CHAR.encode())
    needed = max(1, math.ceil(item_bytes / per_field))
    rows = conn.execute("SELECT id FROM file WHERE dossier_id = ? ORDER BY id", (dossier_id,)).fetchall()
    for n in range(len(rows), needed):
        _add_file(conn, dossier_id, "TP", "Thành phần", f"Thành phần {n + 1}.pdf", seed)
    rows = conn.execute("SELECT id FROM file WHERE dossier_id = ? ORDER BY id", (dossier_id,)).fetchall()
    chars = min(FILL_CHARS_PER_FIELD, math.ceil(item_bytes / len(rows) / len(FILL_CHAR.encode())) + 1)
    conn.executemany("UPDATE file SET tentailieu = ? WHERE id = ?",
                     [(_fill("Bản sao ", chars), row[0]) for row in rows])


# -- rendered kinds -------------------------------------------------------------------------------------


def render(value: dict, kind: str | None, madonvi: str, sizes: PoisonSizes, dumps) -> str:
    """The JSON text of one dossier of the sync answer, poisoned as `kind` says (`value` may be changed)."""
    if kind == "nul-madonvi":
        # The one-stop item names its unit; a NUL in it is what the fetcher must park, not store.
        value = {"mahoso": value.pop("mahoso"), "madonvi": madonvi + "\x00", **value}
    elif kind == "control-chars":
        value["mathutuc"] = value["mathutuc"][:5] + "\x07\t" + value["mathutuc"][5:]
        files = value.get("file_dinh_kem")
        if isinstance(files, list) and files:
            files[0]["matailieu"] = "\x1b[31m" + files[0]["matailieu"]
    elif kind == "huge-field":
        value["tenthutuc"] = _fill("Cấp phép xây dựng ", sizes.huge_bytes // len(FILL_CHAR.encode()))
    text = dumps(value)
    if kind == "deep":
        # Written, not built: "[[[...]]]" as text is served byte for byte and costs no recursion here.
        text = text[:-1] + ',"chitiet":' + "[" * sizes.depth + "]" * sizes.depth + "}"
    return text


# -- file-host kinds ------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def gzip_bomb(decoded_bytes: int) -> bytes:
    """A gzip body of zeros that decodes to `decoded_bytes`, about a thousandth of that on the wire.

    One compressed member repeated (RFC 1952 allows several; every decoder reads them all), so a gigabyte
    costs a fraction of a second to build. Only the client decompresses it: that is the point.
    """
    count, rest = divmod(decoded_bytes, GZIP_MEMBER)
    one = gzip.compress(bytes(GZIP_MEMBER), 9, mtime=0)  # mtime 0: the same bytes every time
    return one * count + (gzip.compress(bytes(rest), 9, mtime=0) if rest else b"")
