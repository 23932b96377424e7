"""Corrections that do not go through, end to end against real RabbitMQ, S3, PostgreSQL and the simulator:
one the one-stop system refuses (parked at once as `correction-refused`, with its message, in the dead
letter, in `hieu_chinh.outcome` and in `dongbo file history`), and one whose retries ran out while the
one-stop system was down (parked as `onestop-unavailable`, `failed`), which `dongbo dlq replay --queue
correct` delivers once after the fault is lifted — and which then leads to the dossier's next version."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy

from harness import services
from harness.pipeline import Pipeline, expected_dossiers, wait_until_synced
from harness.services import wait_for

pytestmark = pytest.mark.slow
TOO_LONG_NAME = "bien-ban-" + "x" * 492 + ".pdf"  # 505 characters: the one-stop system takes at most 500


def rows(pg_url: str, sql: str, **params) -> list[dict]:
    engine = sqlalchemy.create_engine(pg_url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        found = [dict(r) for r in connection.execute(sqlalchemy.text(sql), params).mappings()]
    engine.dispose()
    return found


def correction(pg_url: str, by: str) -> dict:
    found = rows(pg_url, "SELECT * FROM hieu_chinh WHERE requested_by = :b", b=by)
    return found[0] if found else {"status": None, "attempts": 0, "outcome": None}


def sim_stats(sim) -> dict:
    return requests.get(sim.root + "/_sim/stats", timeout=10).json()


def sim_dossier(sim, mahoso: str) -> dict:
    return requests.get(sim.root + "/_sim/dossiers", params={"mahoso": mahoso}, timeout=10).json()[0]


def waiting(pipeline: Pipeline, condition, timeout: float, what: str):
    try:
        return wait_for(condition, timeout=timeout, interval=0.5, what=what)
    except AssertionError:
        print(pipeline.logs())
        raise


def dead_letters(pipeline: Pipeline) -> list[dict]:
    shown = pipeline.dongbo("dlq", "show", "--queue", "correct", "--json")
    return json.loads(shown.stdout)["messages"]


@pytest.fixture(scope="module")
def running(s3_server, rabbit_url) -> Iterator[tuple]:
    """Six dossiers synced; the pipeline and the corrections worker keep running. The harness's retry
    delays (0.5, 1, 2 s) make a correction's retries run out within seconds."""
    prefix, bucket = f"t{uuid.uuid4().hex[:10]}", f"test-{uuid.uuid4().hex[:16]}"
    s3_server.client().make_bucket(bucket)
    sim = services.start_simulator("--seed", "11", "--units", "1", "--dossiers", "6", "--files-per-dossier", "2",
                                   "--file-size", "1500-6000")
    pipeline = None
    try:
        expected = expected_dossiers(sim)
        with services.fresh_database() as pg_url:
            pipeline = Pipeline.configure(sim=sim, units=[expected[0]["madonvi"]], rabbit_url=rabbit_url,
                                          pg_url=pg_url, s3=s3_server, bucket=bucket, queue_prefix=prefix,
                                          DONGBO_POLL_INTERVAL="1")
            pipeline.dongbo("db", "upgrade")
            pipeline.start_all(downloaders=1, inspectors=0)
            pipeline.start("corrections")
            try:
                wait_until_synced(sim, pipeline, len(expected), timeout=120)
                yield sim, pipeline, pg_url, [d["mahoso"] for d in expected]
            finally:
                pipeline.stop_all()
    finally:
        sim.stop()
        services.delete_topologies(rabbit_url, prefix)


def test_a_refused_correction_is_parked_with_the_one_stop_message(running, tmp_path: Path):
    sim, pipeline, pg_url, dossiers = running
    mahoso = dossiers[0]
    matailieu = sorted(f["matailieu"] for f in sim_dossier(sim, mahoso)["files"])[0]
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.4\n% a scan with a name too long\n" + bytes(range(256)) * 8)
    before = sim_stats(sim)["file_replacements"]

    queued = pipeline.dongbo("file", "replace", mahoso, matailieu, str(path), "--name", TOO_LONG_NAME, "--by", "R")
    assert "queued" in queued.stdout
    waiting(pipeline, lambda: correction(pg_url, "R")["status"] == "refused", 60, "the correction refused")

    row = correction(pg_url, "R")
    # What the one-stop system said (its 400 names the field), not a status code alone.
    assert "ten_file" in row["outcome"] and "không hợp lệ" in row["outcome"], row["outcome"]
    assert row["attempts"] == 1 and row["finished_at"] is not None  # a refusal is final: not retried
    assert sim_stats(sim)["file_replacements"] == before
    [letter] = waiting(pipeline, lambda: [d for d in dead_letters(pipeline) if d["mahoso"] == mahoso] or None, 30,
                       "the refused correction in the dead-letter queue")
    assert letter["reason"] == "correction-refused" and "ten_file" in letter["error"], letter
    assert letter["dlq"].endswith(".correct.dlq")

    history = pipeline.dongbo("file", "history", mahoso).stdout
    assert "refused" in history and row["outcome"] in history, history
    found = json.loads(pipeline.dongbo("file", "history", mahoso, "--json").stdout)
    [listed] = [c for c in found["corrections"] if c["requested_by"] == "R"]
    assert (listed["status"], listed["outcome"], listed["version"]) == ("refused", row["outcome"], None)
    # The dossier's own sync is untouched by a failed correction: still one version, still synced.
    assert len(found["versions"]) == 1
    assert rows(pg_url, "SELECT status FROM sync_state WHERE mahoso = :m", m=mahoso)[0]["status"] == "synced"
    # trace finds the parked correction too.
    traced = json.loads(pipeline.dongbo("trace", mahoso, "--json").stdout)
    assert [d["reason"] for d in traced["dead_letters"]] == ["correction-refused"]


def test_a_correction_out_of_retries_is_delivered_once_by_a_replay(running, tmp_path: Path):
    sim, pipeline, pg_url, dossiers = running
    mahoso = dossiers[1]
    matailieu = sorted(f["matailieu"] for f in sim_dossier(sim, mahoso)["files"])[0]
    data = b"%PDF-1.4\n% a better scan\n" + bytes(range(256)) * 16
    path = tmp_path / "ban-moi.pdf"
    path.write_bytes(data)
    before = sim_stats(sim)["file_replacements"]

    requests.post(sim.root + "/_sim/faults", json={"error_rate": {"capnhatfiletheoloaitailieu": 1.0}},
                  timeout=10).raise_for_status()
    try:
        pipeline.dongbo("file", "replace", mahoso, matailieu, str(path), "--name", "Bản mới.pdf", "--by", "F")
        waiting(pipeline, lambda: correction(pg_url, "F")["status"] == "failed", 90,
                "the correction parked once its retries ran out")
    finally:
        requests.post(sim.root + "/_sim/faults", json={"reset": True}, timeout=10).raise_for_status()
    parked = correction(pg_url, "F")
    assert parked["attempts"] >= 4 and parked["outcome"].startswith("onestop-unavailable"), parked
    [letter] = [d for d in dead_letters(pipeline) if d["mahoso"] == mahoso]
    assert letter["reason"] == "onestop-unavailable"
    assert sim_stats(sim)["file_replacements"] == before

    replayed = pipeline.dongbo("dlq", "replay", "--queue", "correct", "--mahoso", mahoso)
    assert "1" in replayed.stdout, replayed.stdout
    waiting(pipeline, lambda: correction(pg_url, "F")["status"] == "applied", 60, "the replayed correction applied")
    assert sim_stats(sim)["file_replacements"] == before + 1
    assert [d for d in dead_letters(pipeline) if d["mahoso"] == mahoso] == []
    [now] = [f for f in sim_dossier(sim, mahoso)["files"] if f["matailieu"] == matailieu]
    assert now["sha256"] == hashlib.sha256(data).hexdigest()

    # The corrected dossier comes back through the sync as its next version, which names the correction.
    def second_version():
        found = json.loads(pipeline.dongbo("file", "history", mahoso, "--json").stdout)
        return found if len(found["versions"]) == 2 and found["versions"][1]["corrections"] else None

    found = waiting(pipeline, second_version, 90, "the corrected dossier archived as its next version")
    assert [c["requested_by"] for c in found["versions"][1]["corrections"]] == ["F"]
    assert sim_stats(sim)["file_replacements"] == before + 1  # and still once
