"""The acker's handler: one mark-synced call per unit per batch; a poison message fails alone; the files
of a batch are reported a few dossiers at a time, all before the mark."""

from __future__ import annotations

import threading
import time

import requests

from harness.pipeline import sim_dossiers
from services.acker.handler import REPORT_THREADS, AckHandler
from shared.broker.outcome import Delivery, Done
from shared.db.dossier_locks import held_for_correction, held_for_marking
from shared.db.engine import make_engine, upgrade
from shared.errors import CorrectionInProgress, OneStopUnavailable, PoisonMessage, reason_of
from shared.messages import DossierIndexed
from shared.onestop import OneStopClient


def test_the_acker_marks_each_unit_in_one_call_and_a_poison_message_fails_alone(simulator_factory, tmp_path):
    sim = simulator_factory("--units", "2", "--dossiers", "12", "--files-per-dossier", "1", "--file-size", "1024")
    dossiers = [d for d in sim_dossiers(sim) if d["has_result"] and d["files"]]
    url = f"sqlite:///{tmp_path / 'dongbo.db'}"
    upgrade(url)
    client = OneStopClient(sim.api_url, "admin_sotaichinh", "1")
    deliveries = [Delivery(tag=i, body=DossierIndexed(mahoso=d["mahoso"], madonvi=d["madonvi"]).to_bytes(), headers={})
                  for i, d in enumerate(dossiers)]
    deliveries.insert(3, Delivery(tag=99, body=b"{}", headers={}))

    results = AckHandler(client, make_engine(url), batch_size=100)(deliveries)

    assert isinstance(results[3], PoisonMessage)
    assert all(isinstance(r, Done) for i, r in enumerate(results) if i != 3)
    stats = requests.get(sim.root + "/_sim/stats", timeout=10).json()
    assert stats["mark_calls"] == len({d["madonvi"] for d in dossiers}) == 2
    assert all(d["synced"] for d in sim_dossiers(sim) if d["mahoso"] in {x["mahoso"] for x in dossiers})


class _Reports:
    """Stands in for the file reporter: notes what was reported, when, and on which thread."""

    def __init__(self, fail_on: str | None = None):
        self.fail_on = fail_on
        self.reported: list[str] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def report(self, madonvi: str, mahosos: list[str]) -> int:
        time.sleep(0.05)  # a round trip: the slices overlap
        with self.lock:
            self.threads.add(threading.current_thread().name)
            if self.fail_on in mahosos:
                raise OneStopUnavailable("capnhattrangthaidongbofile answered 503")
            self.reported.extend(mahosos)
        return len(mahosos)


class _Marks:
    def __init__(self, reports: _Reports):
        self.reports = reports
        self.marked: list[list[str]] = []

    def mark_synced(self, madonvi: str, mahosos: list[str], batch_size: int) -> None:
        # Files first: every file of the batch was reported before its dossiers are marked.
        assert sorted(self.reports.reported) == sorted(mahosos)
        self.marked.append(mahosos)


def test_files_are_reported_a_few_dossiers_at_a_time_and_all_before_the_mark(tmp_path):
    url = f"sqlite:///{tmp_path / 'dongbo.db'}"
    upgrade(url)
    mahosos = [f"M-{n}" for n in range(10)]
    deliveries = [Delivery(tag=i, body=DossierIndexed(mahoso=m, madonvi="U").to_bytes(), headers={})
                  for i, m in enumerate(mahosos)]

    reports = _Reports()
    marks = _Marks(reports)
    handler = AckHandler(marks, make_engine(url), batch_size=100)  # type: ignore[arg-type]
    handler.files = reports  # type: ignore[assignment]
    results = handler(deliveries)
    assert all(isinstance(r, Done) for r in results) and marks.marked == [mahosos]
    assert 1 < len(reports.threads) <= REPORT_THREADS

    # DONGBO_REPORT_CONCURRENCY bounds the calls in flight.
    reports = _Reports()
    gentle = AckHandler(_Marks(reports), make_engine(url), batch_size=100, report_threads=2)  # type: ignore[arg-type]
    gentle.files = reports  # type: ignore[assignment]
    assert all(isinstance(r, Done) for r in gentle(deliveries)) and len(reports.threads) == 2

    # A report that fails fails the unit's messages (retried whole); nothing is marked.
    reports = _Reports(fail_on="M-7")
    marks = _Marks(reports)
    handler.client, handler.files = marks, reports  # type: ignore[assignment]
    results = handler(deliveries)
    assert all(isinstance(r, OneStopUnavailable) for r in results) and marks.marked == []


def test_no_mark_slips_in_while_a_correction_of_the_dossier_reaches_the_one_stop_system(pg_url):
    """The acker's check for corrections and its mark must not straddle a correction being applied: that
    mark would undo the correction's on the one-stop system, and the corrected dossier would never come back."""
    upgrade(pg_url)
    engine = make_engine(pg_url)
    deliveries = [Delivery(tag=i, body=DossierIndexed(mahoso=m, madonvi="U").to_bytes(), headers={})
                  for i, m in enumerate(["M-1", "M-2"])]
    reports = _Reports()
    marks = _Marks(reports)
    handler = AckHandler(marks, engine, batch_size=100)  # type: ignore[arg-type]
    handler.files = reports  # type: ignore[assignment]
    # A correction of M-1 is being applied: M-1 is retried later, M-2 is marked now.
    with held_for_correction(engine, "M-1"):
        results = handler(deliveries)
    assert isinstance(results[0], CorrectionInProgress) and reason_of(results[0]) == "correction-in-progress"
    assert isinstance(results[1], Done) and marks.marked == [["M-2"]]

    # A correction waits for a batch that is marking its dossier, and then goes ahead.
    marking = threading.Event()

    def batch() -> None:
        with held_for_marking(engine, ["M-3"]) as busy:
            assert busy == set()
            marking.set()
            time.sleep(0.5)

    thread = threading.Thread(target=batch)
    thread.start()
    marking.wait(5)
    started = time.monotonic()
    with held_for_correction(engine, "M-3"):
        waited = time.monotonic() - started
    thread.join()
    assert waited >= 0.3
    engine.dispose()
