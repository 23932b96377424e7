"""`dongbo audit` against an archive the pipeline filled: it finds changed, missing and untracked objects,
resumes after being killed without re-reading what it verified, and keeps to `--max-rate`."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time

import pytest

from harness.services import ROOT, wait_for
from shared.archive.reading import TokenBucket
from tests.archive_support import Archive, filled_archive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(s3_server, rabbit_url):
    # 24 files of 20-40 kB: enough bytes to measure a rate, little enough to stay fast.
    with filled_archive(s3_server, rabbit_url, dossiers=12, file_size="20000-40000") as filled:
        yield filled


def files(archive: Archive) -> int:
    return archive.sql("SELECT count(*) AS n FROM tai_lieu")[0]["n"]


def test_a_killed_audit_resumes_without_reading_again_what_it_verified(archive: Archive):
    total = files(archive)
    # Slow enough (about 0.2 s a file) to be killed half-way.
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "audit", "--max-rate", "0.15"], cwd=ROOT,
                               env=archive.pipeline._environ(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: archive.sql("SELECT count(*) AS n FROM file_audit")[0]["n"] >= 5, timeout=60,
                 what="the audit to verify a few files")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = {r["object_key"]: r["audited_at"] for r in archive.sql("SELECT object_key, audited_at FROM file_audit")}
    assert 5 <= len(before) < total

    report = archive.dongbo_json("audit")
    assert report["due"] == report["checked"] == total - len(before), "it read again what was verified"
    assert report["counts"]["ok"] == report["checked"] and report["counts"]["untracked"] == 0
    after = {r["object_key"]: r["audited_at"] for r in archive.sql("SELECT object_key, audited_at FROM file_audit")}
    assert len(after) == total and all(after[key] == at for key, at in before.items())

    again = archive.dongbo_json("audit")  # everything verified recently: nothing is due
    assert again["due"] == again["checked"] == 0


def test_audit_finds_changed_missing_and_untracked_objects(archive: Archive):
    archive.sql("DELETE FROM file_audit")  # a new cycle: every file is due again
    changed, deleted = archive.sql("SELECT object_key FROM tai_lieu ORDER BY id LIMIT 2")
    client = archive.s3.client()
    data = bytearray(archive.object_bytes(changed["object_key"]))
    data[100] ^= 0x01
    client.put_object(archive.bucket, changed["object_key"], io.BytesIO(bytes(data)), len(data))
    client.remove_object(archive.bucket, deleted["object_key"])
    stray = f"{changed['object_key'].split('/')[0]}/stray/file.pdf"
    client.put_object(archive.bucket, stray, io.BytesIO(b"%PDF-1.4 stray"), 14)

    report = archive.dongbo_json("audit", expect=1)
    total = files(archive)
    assert report["counts"] == {"ok": total - 2, "changed": 1, "missing": 1, "unreadable": 0, "untracked": 1}
    assert {(p["result"], p["object_key"]) for p in report["problems"]} == {
        ("changed", changed["object_key"]), ("missing", deleted["object_key"]), ("untracked", stray)}
    code, text, _ = archive.dongbo("audit", "--no-untracked")
    assert code == 1 and "1 changed, 1 missing" in text  # wrong files stay due until they are right again

    from shared.archive.fixity import audit_status
    from shared.db.engine import make_engine

    engine = make_engine(archive.pg_url)
    try:
        status = audit_status(engine)
    finally:
        engine.dispose()
    assert status["last_results"] == {"ok": total - 2, "changed": 1, "missing": 1, "unreadable": 0}
    assert status["last_run"]["changed"] == 1 and status["due"] == 2
    # Repaired for the next tests: the bytes back, the stray object gone.
    data[100] ^= 0x01
    client.put_object(archive.bucket, changed["object_key"], io.BytesIO(bytes(data)), len(data))
    client.remove_object(archive.bucket, stray)


def test_audit_keeps_to_max_rate(archive: Archive):
    archive.sql("DELETE FROM file_audit")
    started = time.monotonic()
    report = archive.dongbo_json("audit", "--max-rate", "0.5", "--no-untracked", expect=1)  # one object is gone
    elapsed = time.monotonic() - started
    rate = report["bytes_read"] / elapsed / 1e6
    print(f"audit read {report['bytes_read']} bytes in {elapsed:.2f}s: {rate:.3f} MB/s at --max-rate 0.5")
    assert report["bytes_read"] > 500_000
    # The burst allowance is a tenth of a second of the rate, so the rate holds within a few percent.
    assert rate <= 0.5 * 1.1
    assert rate >= 0.5 * 0.5, "far slower than asked: the limit is not the only brake"


def test_token_bucket_paces_exactly():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(1000.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(50):
        bucket.take(100)
    assert 4.8 <= now[0] <= 5.0  # 5000 bytes at 1000 B/s, less the 100-byte burst


def test_audit_every_runs_on_a_schedule_serves_metrics_and_stops_on_sigterm(archive: Archive):
    import requests

    from harness.services import free_port

    finished = archive.sql("SELECT count(*) AS n FROM audit_run WHERE state = 'finished'")[0]["n"]
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "audit", "--every", "1s", "--no-untracked"],
                               cwd=ROOT, env=archive.pipeline._environ(DONGBO_METRICS_PORT=str(port)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: archive.sql("SELECT count(*) AS n FROM audit_run WHERE state = 'finished'")[0]["n"]
                 >= finished + 2, timeout=60, what="two scheduled audit runs")
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'dongbo_audit_last_run_files{result="missing"} 1.0' in metrics
        assert "dongbo_audit_last_run_timestamp_seconds" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_a_scheduled_audit_waits_for_a_bucket_that_does_not_exist_yet(archive: Archive, s3_server):
    """Started with the services, it must not exit before the downloaders have made the bucket."""
    import uuid

    later = f"test-{uuid.uuid4().hex[:16]}"
    before = archive.sql("SELECT count(*) AS n FROM audit_run")[0]["n"]
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "audit", "--every", "1s", "--no-untracked"],
                               cwd=ROOT, env=archive.pipeline._environ(DONGBO_S3_BUCKET=later),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # without waiting, it exited within a second ("bucket ... does not exist")
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert archive.sql("SELECT count(*) AS n FROM audit_run")[0]["n"] == before  # nothing run yet
        s3_server.client().make_bucket(later)
        wait_for(lambda: archive.sql("SELECT count(*) AS n FROM audit_run")[0]["n"] > before, timeout=60,
                 what="an audit run once the bucket exists")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
