"""The simulator's SQLite state: dossiers, their files, uploaded bytes, and a few persisted values.

One connection per thread (SQLite connections must not be shared across threads), WAL so that readers
never wait for the single writer. Long streams (the sync response, `/_sim/dossiers`) get a connection of
their own because Starlette may pull successive chunks on different worker threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dossier (
    id INTEGER PRIMARY KEY,
    mahoso TEXT NOT NULL,
    madonvi TEXT NOT NULL,
    tentochuccanhan TEXT NOT NULL,
    ngaynhan TEXT NOT NULL,          -- as served, dd/mm/yyyy (or garbage for a poison dossier)
    ngaynhan_iso TEXT,               -- yyyy-mm-dd for range queries; NULL when ngaynhan is not a date
    mathutuc TEXT NOT NULL,
    tenthutuc TEXT NOT NULL,
    has_result INTEGER NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0,
    mark_count INTEGER NOT NULL DEFAULT 0,
    poison TEXT
);
CREATE TABLE IF NOT EXISTS file (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dossier_id INTEGER NOT NULL REFERENCES dossier (id),
    matailieu TEXT NOT NULL,
    tentailieu TEXT NOT NULL,
    ten_file TEXT NOT NULL,
    stamp TEXT,                      -- yyyy_mm_dd_hhmmssfff of url_file; identifies the file on GET
    size INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'generated',  -- generated | uploaded | missing | forbidden-host | poison.FILE_KINDS
    url_override TEXT,               -- a url_file that is not ours (forbidden-host poison)
    sha256 TEXT,                     -- cached on first need
    fetch_count INTEGER NOT NULL DEFAULT 0,
    synced INTEGER NOT NULL DEFAULT 0,
    mark_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS upload (file_id INTEGER PRIMARY KEY, content BLOB NOT NULL);
"""

# Built after the seed's bulk insert: sorting once is several times faster than growing the B-trees row by row.
INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS dossier_mahoso ON dossier (mahoso);
CREATE UNIQUE INDEX IF NOT EXISTS file_stamp ON file (stamp);
CREATE INDEX IF NOT EXISTS file_dossier ON file (dossier_id);
-- Equality on all three columns leaves rows in id order, so the no-date sync needs no sort.
CREATE INDEX IF NOT EXISTS dossier_pending ON dossier (madonvi, synced, has_result);
CREATE INDEX IF NOT EXISTS dossier_received ON dossier (madonvi, ngaynhan_iso);
"""

# The columns of one sync row: a dossier's, then one of its files' (NULLs where it has none).
DOSSIER_COLUMNS = ("d.id, d.mahoso, d.madonvi, d.tentochuccanhan, d.ngaynhan, d.mathutuc, d.tenthutuc, d.has_result, "
                   "d.poison")
FILE_COLUMNS = "f.id, f.matailieu, f.tentailieu, f.ten_file, f.stamp, f.url_override, f.size"
SPLIT = DOSSIER_COLUMNS.count(",") + 1


class Store:
    """Opens the SQLite file, creates the schema, and hands out per-thread connections."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._local = threading.local()
        conn = self.connect()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(TABLES)
        conn.close()

    def connect(self, *, any_thread: bool = False) -> sqlite3.Connection:
        """A new connection in autocommit mode; transactions are opened explicitly with BEGIN."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=not any_thread, timeout=30)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.row_factory = sqlite3.Row
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
        return conn

    # -- persisted values ----------------------------------------------------------------------

    def get_meta(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.conn).execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def create_indexes(self, conn: sqlite3.Connection | None = None) -> None:
        for statement in filter(str.strip, INDEXES.split(";")):
            (conn or self.conn).execute(statement)

    def is_seeded(self) -> bool:
        return self.get_meta("seeded_with") is not None

    # -- dossiers ------------------------------------------------------------------------------

    def iter_sync(self, conn: sqlite3.Connection, madonvi: str, date_range: tuple[str, str] | None) -> Iterator[tuple]:
        """(dossier row, [file rows]) of one sync call, read lazily in id (or date) order.

        Without dates: dossiers with a result and files, not yet synced (the inner join drops those
        without files). With dates: every dossier received in the range, synced or not, files or not.
        """
        if date_range is None:
            sql = (f"SELECT {DOSSIER_COLUMNS}, {FILE_COLUMNS} FROM dossier d JOIN file f ON f.dossier_id = d.id "
                   "WHERE d.madonvi = ? AND d.synced = 0 AND d.has_result = 1 ORDER BY d.id, f.id")
            params: tuple = (madonvi,)
        else:
            sql = (f"SELECT {DOSSIER_COLUMNS}, {FILE_COLUMNS} FROM dossier d LEFT JOIN file f ON f.dossier_id = d.id "
                   "WHERE d.madonvi = ? AND d.ngaynhan_iso BETWEEN ? AND ? ORDER BY d.ngaynhan_iso, d.id, f.id")
            params = (madonvi, *date_range)
        cursor = conn.execute(sql, params)
        cursor.row_factory = None  # plain tuples: this loop runs for every row of a 200,000-dossier unit
        current, files = None, []  # type: tuple | None, list[dict]
        while rows := cursor.fetchmany(1000):
            for row in rows:
                if current is None or row[0] != current[0]:
                    if current is not None:
                        yield current, files
                    current, files = row[:SPLIT], []
                if row[SPLIT] is not None:
                    files.append(row[SPLIT:])
        if current is not None:
            yield current, files

    def mark_synced(self, madonvi: str, mahosos: Iterable[str]) -> int:
        """Marks the unit's dossiers synced and counts one mark each; unknown codes are ignored."""
        conn = self.conn
        with transaction(conn):
            before = conn.total_changes
            conn.executemany(
                "UPDATE dossier SET synced = 1, mark_count = mark_count + 1 WHERE mahoso = ? AND madonvi = ?",
                [(code, madonvi) for code in dict.fromkeys(mahosos)],
            )
            return conn.total_changes - before

    def dossier_id(self, madonvi: str, mahoso: str) -> int | None:
        row = self.conn.execute("SELECT id FROM dossier WHERE mahoso = ? AND madonvi = ?", (mahoso, madonvi)).fetchone()
        return row[0] if row else None

    def totals(self) -> dict:
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(synced), 0), coalesce(sum(mark_count > 0), 0), "
            "coalesce(sum(poison IS NOT NULL), 0), "
            "(SELECT count(*) FROM dossier p WHERE p.synced = 0 AND p.has_result = 1 "
            " AND EXISTS (SELECT 1 FROM file f WHERE f.dossier_id = p.id)), "
            "(SELECT count(*) FROM file) FROM dossier"
        ).fetchone()
        return dict(zip(("dossiers", "synced", "marked_dossiers", "poison", "pending", "files"), row, strict=True))


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): takes the write lock up front, so no upgrade deadlock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
