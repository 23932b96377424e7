"""End to end, against real RabbitMQ, S3, PostgreSQL and the simulator: the document-type catalog, per-file
sync reports, corrections sent back with `dongbo file replace|delete` (also while the one-stop system
fails, and run twice), a vendor-side change after marking, and a re-sync of unchanged dossiers — with every
version's objects kept readable and byte-identical."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import requests
import sqlalchemy

from harness.pipeline import Pipeline, expected_dossiers, sim_dossiers, wait_until_synced
from harness.services import wait_for
from services.onestop_sim import vocab

pytestmark = pytest.mark.slow

RETRY_DELAYS = "0.5,1,2,4,8,8"  # a set the harness knows, so the test's queues are cleaned up


def rows(pg_url: str, sql: str, **params) -> list[dict]:
    engine = sqlalchemy.create_engine(pg_url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        found = [dict(r) for r in connection.execute(sqlalchemy.text(sql), params).mappings()]
    engine.dispose()
    return found


def object_sha256(s3, bucket: str, key: str) -> str:
    response = s3.client().get_object(bucket, key)
    try:
        return hashlib.sha256(response.read()).hexdigest()
    finally:
        response.close()
        response.release_conn()


def bucket_keys(s3, bucket: str) -> set[str]:
    return {o.object_name for o in s3.client().list_objects(bucket, recursive=True)}


def sim_stats(sim) -> dict:
    return requests.get(sim.root + "/_sim/stats", timeout=10).json()


def sim_dossier(sim, mahoso: str) -> dict:
    return requests.get(sim.root + "/_sim/dossiers", params={"mahoso": mahoso}, timeout=10).json()[0]


def waiting(pipeline, condition, timeout: float, what: str):
    try:
        return wait_for(condition, timeout=timeout, interval=0.5, what=what)
    except AssertionError:
        print(pipeline.logs())
        raise


def archive_matches_sim(sim, pg_url: str, mahoso: str) -> bool:
    """The archive's current files of a dossier are exactly the one-stop system's, and it is marked again."""
    wanted = {(f["url_file"], f["sha256"]) for f in sim_dossier(sim, mahoso)["files"]}
    current = {(r["url_file"], r["sha256"]) for r in rows(
        pg_url, "SELECT url_file, sha256 FROM tai_lieu WHERE mahoso = :m AND superseded_at IS NULL", m=mahoso)}
    return wanted == current and sim_dossier(sim, mahoso)["synced"]


def status_of(pg_url: str, by: str) -> dict:
    found = rows(pg_url, "SELECT status, attempts FROM hieu_chinh WHERE requested_by = :b", b=by)
    return found[0] if found else {"status": None, "attempts": 0}


@pytest.fixture
def running(simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix):
    sim = simulator_factory("--seed", "11", "--units", "1", "--dossiers", "12", "--files-per-dossier", "2",
                            "--file-size", "1500-6000")
    expected = expected_dossiers(sim)
    pipeline = Pipeline.configure(sim=sim, units=[expected[0]["madonvi"]], rabbit_url=rabbit_url, pg_url=pg_url,
                                  s3=s3_server, bucket=bucket, queue_prefix=queue_prefix,
                                  DONGBO_CATALOG_INTERVAL="1", DONGBO_POLL_INTERVAL="1",
                                  DONGBO_RETRY_DELAYS=RETRY_DELAYS, DONGBO_INFLIGHT_TIMEOUT="5")
    pipeline.dongbo("db", "upgrade")
    pipeline.start_all(downloaders=1)
    pipeline.start("corrections")
    try:
        wait_until_synced(sim, pipeline, len(expected), timeout=120)
        yield sim, pipeline, expected
    finally:
        pipeline.stop_all()


def two_type_dossiers(expected: list[dict]) -> list[dict]:
    """Dossiers with two files of two different types (the corrections act per type)."""
    return [d for d in expected if len({f["matailieu"] for f in d["files"]}) == len(d["files"]) >= 2]


def test_catalog_lands_refreshes_and_every_file_is_reported(running, pg_url):
    sim, pipeline, expected = running
    catalog = rows(pg_url, "SELECT * FROM loai_tai_lieu")
    assert {r["maloaitailieu"] for r in catalog} == {code for code, _ in vocab.CATALOG}
    assert all(r["retired_at"] is None for r in catalog)

    # Every stored file reported once in effect, its time recorded; the one-stop system holds each marked.
    stored = rows(pg_url, "SELECT * FROM tai_lieu WHERE superseded_at IS NULL")
    assert stored and all(r["reported_at"] is not None for r in stored)
    wanted = {d["mahoso"] for d in expected}
    files = [f for d in sim_dossiers(sim) if d["mahoso"] in wanted for f in d["files"]]
    assert all(f["synced"] and f["mark_count"] >= 1 for f in files)
    assert sim_stats(sim)["file_marks"] >= len(files)

    # A type gone from the catalog is kept, marked retired.
    used = sorted({r["matailieu"] for r in stored})[0]
    requests.post(sim.root + "/_sim/catalog", json={"remove": [used]}, timeout=10).raise_for_status()
    waiting(pipeline, lambda: rows(pg_url, "SELECT retired_at FROM loai_tai_lieu WHERE maloaitailieu = :c",
                                   c=used)[0]["retired_at"] is not None, 30, "the type marked retired")
    assert len(rows(pg_url, "SELECT * FROM loai_tai_lieu")) == len(catalog)

    # A file of a type the catalog never listed is stored and indexed as usual, and listed.
    from shared.db.document_types import unknown_document_types

    mahoso = expected[0]["mahoso"]
    requests.post(sim.root + f"/_sim/dossiers/{mahoso}/files",
                  json={"add": [{"matailieu": "LOAI-MOI", "ten_file": "moi.pdf", "size": 2000}]},
                  timeout=10).raise_for_status()
    waiting(pipeline, lambda: archive_matches_sim(sim, pg_url, mahoso), 60, "the new file")
    engine = sqlalchemy.create_engine(pg_url, poolclass=sqlalchemy.pool.NullPool)
    assert dict(unknown_document_types(engine)) == {"LOAI-MOI": 1}
    engine.dispose()
    status = json.loads(pipeline.dongbo("status", "--json").stdout)
    assert status["unknown_document_types"] == {"LOAI-MOI": 1}
    assert "LOAI-MOI (1)" in pipeline.dongbo("status").stdout
    # A retired type that comes back is no longer retired.
    requests.post(sim.root + "/_sim/catalog", json={"reset": True}, timeout=10).raise_for_status()
    waiting(pipeline, lambda: rows(pg_url, "SELECT retired_at FROM loai_tai_lieu WHERE maloaitailieu = :c",
                                   c=used)[0]["retired_at"] is None, 30, "the type back")


def test_replace_and_delete_flow_back_and_every_version_stays(running, pg_url, s3_server, bucket, tmp_path: Path):
    sim, pipeline, expected = running
    target = two_type_dossiers(expected)[0]
    mahoso = target["mahoso"]
    keep, drop = sorted(f["matailieu"] for f in target["files"])[:2]
    before = rows(pg_url, "SELECT object_key, sha256 FROM tai_lieu WHERE mahoso = :m", m=mahoso)
    new_bytes = b"%PDF-1.4\n% a better scan\n" + bytes(range(256)) * 40
    path = tmp_path / "ket-qua.pdf"
    path.write_bytes(new_bytes)

    pipeline.dongbo("file", "replace", mahoso, keep, str(path), "--name", "Kết quả mới.pdf", "--by", "Nguyễn Văn A")
    pipeline.dongbo("file", "delete", mahoso, drop, "--by", "Nguyễn Văn A")

    def flowed_back():
        files = sim_dossier(sim, mahoso)["files"]
        return (not [f for f in files if f["matailieu"] == drop]
                and [f["sha256"] for f in files if f["matailieu"] == keep] == [hashlib.sha256(new_bytes).hexdigest()]
                and archive_matches_sim(sim, pg_url, mahoso))

    waiting(pipeline, flowed_back, 90, "the corrections applied and synced back")
    stats = sim_stats(sim)
    assert (stats["file_replacements"], stats["file_deletions"]) == (1, 1)
    corrections = rows(pg_url, "SELECT * FROM hieu_chinh WHERE mahoso = :m ORDER BY id", m=mahoso)
    assert [(c["action"], c["status"], c["requested_by"]) for c in corrections] == [
        ("replace", "applied", "Nguyễn Văn A"), ("delete", "applied", "Nguyễn Văn A")]
    # Every old object is still readable, byte for byte; its row is kept and marked superseded.
    for old in before:
        assert object_sha256(s3_server, bucket, old["object_key"]) == old["sha256"]
    superseded = rows(pg_url, "SELECT * FROM tai_lieu WHERE mahoso = :m AND superseded_at IS NOT NULL", m=mahoso)
    current = {r["object_key"] for r in rows(pg_url, "SELECT object_key FROM tai_lieu WHERE mahoso = :m "
                                             "AND superseded_at IS NULL", m=mahoso)}
    assert {r["object_key"] for r in superseded} == {r["object_key"] for r in before} - current
    assert all(r["superseded_reason"] for r in superseded)
    versions = rows(pg_url, "SELECT * FROM ho_so_version WHERE mahoso = :m ORDER BY id", m=mahoso)
    assert len(versions) >= 2 and len({v["source_hash"] for v in versions}) == len(versions)
    assert set(json.loads(versions[0]["object_keys"])) == {r["object_key"] for r in before}

    # The same correction run twice changes the one-stop system once.
    pipeline.dongbo("file", "replace", mahoso, keep, str(path), "--name", "Kết quả mới.pdf", "--by", "B")
    waiting(pipeline, lambda: status_of(pg_url, "B")["status"] == "applied", 60, "the repeated correction")
    assert sim_stats(sim)["file_replacements"] == 1
    history = pipeline.dongbo("file", "history", mahoso).stdout
    assert "replace" in history and "delete" in history and "applied" in history and "versions:" in history
    # So does a delete of a type already gone: nothing to do, nothing sent.
    pipeline.dongbo("file", "delete", mahoso, drop, "--by", "D")
    waiting(pipeline, lambda: status_of(pg_url, "D")["status"] == "applied", 60, "the repeated delete")
    assert sim_stats(sim)["file_deletions"] == 1

    # Made while the one-stop system fails: delivered when it is back.
    other = two_type_dossiers(expected)[1]["mahoso"]
    other_type = sorted(f["matailieu"] for f in sim_dossier(sim, other)["files"])[0]
    requests.post(sim.root + "/_sim/faults", json={"error_rate": {"capnhatfiletheoloaitailieu": 1.0}},
                  timeout=10).raise_for_status()
    try:
        pipeline.dongbo("file", "replace", other, other_type, str(path), "--by", "C")
        waiting(pipeline, lambda: status_of(pg_url, "C")["attempts"] >= 2, 60, "tries while the one-stop is down")
        assert status_of(pg_url, "C")["status"] == "queued"
    finally:
        requests.post(sim.root + "/_sim/faults", json={"reset": True}, timeout=10).raise_for_status()
    waiting(pipeline, lambda: status_of(pg_url, "C")["status"] == "applied" and archive_matches_sim(sim, pg_url, other),
            90, "the correction delivered once the one-stop is back")
    assert sim_stats(sim)["file_replacements"] == 2


def test_vendor_change_is_a_new_version_and_an_unchanged_resync_creates_nothing(running, pg_url, s3_server, bucket):
    sim, pipeline, expected = running
    target = expected[0]
    mahoso, changed = target["mahoso"], target["files"][0]
    old = rows(pg_url, "SELECT * FROM tai_lieu WHERE mahoso = :m AND url_file = :u", m=mahoso, u=changed["url_file"])
    assert len(old) == 1
    # The vendor changes a file's bytes under the same address after the dossier was marked.
    requests.post(sim.root + f"/_sim/dossiers/{mahoso}/files", json={"resize": {changed["matailieu"]: 7777}},
                  timeout=10).raise_for_status()
    waiting(pipeline, lambda: archive_matches_sim(sim, pg_url, mahoso), 90, "the changed dossier archived again")
    new = rows(pg_url, "SELECT * FROM tai_lieu WHERE mahoso = :m AND url_file = :u AND superseded_at IS NULL",
               m=mahoso, u=changed["url_file"])
    assert len(new) == 1 and new[0]["object_key"] != old[0]["object_key"] and new[0]["size"] == 7777
    assert object_sha256(s3_server, bucket, old[0]["object_key"]) == old[0]["sha256"]
    assert object_sha256(s3_server, bucket, new[0]["object_key"]) == new[0]["sha256"]
    assert rows(pg_url, "SELECT superseded_at FROM tai_lieu WHERE id = :i", i=old[0]["id"])[0]["superseded_at"]
    assert len(rows(pg_url, "SELECT * FROM ho_so_version WHERE mahoso = :m", m=mahoso)) == 2

    # The vendor adds a file: one more version.
    requests.post(sim.root + f"/_sim/dossiers/{mahoso}/files",
                  json={"add": [{"matailieu": vocab.CATALOG[0][0], "ten_file": "bổ sung.pdf", "size": 3000}]},
                  timeout=10).raise_for_status()
    waiting(pipeline, lambda: archive_matches_sim(sim, pg_url, mahoso), 90, "the added file")
    assert len(rows(pg_url, "SELECT * FROM ho_so_version WHERE mahoso = :m", m=mahoso)) == 3

    # The unchanged dossier offered again (its mark cleared, its content the same) creates nothing.
    def snapshot():
        return (rows(pg_url, "SELECT id, object_key, sha256, superseded_at FROM tai_lieu ORDER BY id"),
                rows(pg_url, "SELECT id, source_hash FROM ho_so_version ORDER BY id"), bucket_keys(s3_server, bucket))

    before = snapshot()
    indexed = rows(pg_url, "SELECT indexed_at FROM ho_so WHERE mahoso = :m", m=mahoso)[0]["indexed_at"]
    requests.post(sim.root + f"/_sim/dossiers/{mahoso}/files", json={}, timeout=10).raise_for_status()
    waiting(pipeline, lambda: sim_dossier(sim, mahoso)["synced"] and rows(
        pg_url, "SELECT indexed_at FROM ho_so WHERE mahoso = :m", m=mahoso)[0]["indexed_at"] > indexed,
        60, "the unchanged dossier through the pipeline again")
    assert snapshot() == before
