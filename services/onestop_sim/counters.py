"""Event counts (logins, sync and mark calls, file fetches) kept in memory and flushed to SQLite.

A write per file GET would serialize every download behind SQLite's single writer, so counts collect
here and are written in one transaction every second, at shutdown, and before any `/_sim/*` read. The
flush holds a lock for its whole write, so a reader that flushes then reads sees every count so far.
"""

from __future__ import annotations

import threading
from collections import Counter

from services.onestop_sim.state import Store, transaction

GLOBAL_NAMES = ("logins", "sync_calls", "mark_calls", "file_mark_calls", "file_fetches", "file_marks",
                "file_replacements", "file_deletions")


class Counters:
    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()  # guards the pending counts; taken for microseconds
        self._flush_lock = threading.Lock()  # one flush at a time, held while writing
        self._events: Counter[str] = Counter()
        self._fetches: Counter[int] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._events[name] += amount

    def file_fetched(self, file_id: int) -> None:
        with self._lock:
            self._fetches[file_id] += 1
            self._events["file_fetches"] += 1

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                events, self._events = self._events, Counter()
                fetches, self._fetches = self._fetches, Counter()
            if not events and not fetches:
                return
            conn = self.store.conn
            try:
                with transaction(conn):
                    totals = self.store.get_meta("counters", {})
                    for name, amount in events.items():
                        totals[name] = totals.get(name, 0) + amount
                    self.store.set_meta("counters", totals, conn)
                    conn.executemany("UPDATE file SET fetch_count = fetch_count + ? WHERE id = ?",
                                     [(n, file_id) for file_id, n in fetches.items()])
            except Exception:
                with self._lock:  # keep the counts for the next flush rather than lose them
                    self._events.update(events)
                    self._fetches.update(fetches)
                raise

    def totals(self) -> dict:
        """Every count so far, exact: flushes first. Per-unit sync calls are under `sync_calls_by_unit`."""
        self.flush()
        stored = self.store.get_meta("counters", {})
        by_unit = {name.partition("@")[2]: n for name, n in stored.items() if name.startswith("sync_calls@")}
        return {**{name: stored.get(name, 0) for name in GLOBAL_NAMES}, "sync_calls_by_unit": by_unit}
