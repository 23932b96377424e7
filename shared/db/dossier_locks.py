"""A lock per dossier between marking it synced and correcting it on the one-stop system.

The one-stop mark names a dossier, not a version. The acker checks that no correction was applied after the
version it holds was fetched (`services/acker/corrections_gate.py`), then marks. A correction applied
between that check and the mark would be lost: the correction clears the dossier's mark on the one-stop
system, the stale mark sets it again, and the corrected dossier is never offered to the archive. So:

- the acker holds a *shared* lock on each dossier of its batch from the check until its mark is sent; a
  dossier whose correction is being applied right now is not waited for but retried later;
- the corrections worker holds the *exclusive* lock from reading the dossier on the one-stop system until its
  outcome is recorded in `hieu_chinh`, waiting for any batch marking that dossier.

Either the mark comes first (and the correction clears it, so the new version is fetched), or the correction
is recorded first (and the check sees it). PostgreSQL advisory locks, held by a transaction: a crash or a
lost connection releases them. Other databases (SQLite, in tests of a single process) have no such lock
and need none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Engine

# The first key of the two-key advisory lock: keeps these locks apart from any other use of advisory locks.
NAMESPACE = 0x6462  # "db"


@contextmanager
def held_for_marking(engine: Engine, mahosos: Iterable[str]) -> Iterator[set[str]]:
    """Holds the dossiers (shared) until the block ends; yields those a correction holds now, not held."""
    wanted = sorted(set(mahosos))
    if engine.dialect.name != "postgresql" or not wanted:
        yield set()
        return
    with engine.begin() as connection:
        rows = connection.execute(
            text("SELECT m, pg_try_advisory_xact_lock_shared(:ns, hashtext(m)) "
                 "FROM unnest(CAST(:ms AS text[])) AS m"),
            {"ns": NAMESPACE, "ms": wanted},
        )
        yield {mahoso for mahoso, held in rows if not held}


@contextmanager
def held_for_correction(engine: Engine, mahoso: str) -> Iterator[None]:
    """Holds one dossier exclusively until the block ends, waiting for any batch that is marking it."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:m))"), {"ns": NAMESPACE, "m": mahoso})
        yield
