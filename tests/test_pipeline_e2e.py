"""End to end: the simulator, the four services as separate processes (three downloaders), and real
RabbitMQ, S3 and PostgreSQL. Every dossier must arrive exactly once, with every file intact, and be
marked synced; a second run must change nothing."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest

from harness.pipeline import Pipeline, database_rows, expected_dossiers, queue_depths, sim_dossiers, wait_until_synced
from harness.services import wait_for
from shared.broker.topology import Topology

pytestmark = pytest.mark.slow

# A password that cannot appear in a log line by chance, and the shape of any JWT the simulator issues.
PASSWORD = "Mật-khẩu-0f9e8d7c"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def sha256_of(s3, bucket: str, key: str) -> str:
    response = s3.client().get_object(bucket, key)
    try:
        digest = hashlib.sha256()
        for chunk in response.stream(256 * 1024):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        response.close()
        response.release_conn()


def check_archive(sim, pg_url, s3_server, bucket):
    """Every expected dossier once in ho_so; every file once in tai_lieu and in the bucket, intact."""
    expected = expected_dossiers(sim)
    ho_so, tai_lieu = database_rows(pg_url)
    counts = Counter(row["mahoso"] for row in ho_so)
    assert {d["mahoso"] for d in expected} <= set(counts), "a dossier is missing from ho_so"
    assert max(counts.values()) == 1, "a dossier has two ho_so rows"
    rows_by_dossier: dict[str, list[dict]] = {}
    for row in tai_lieu:
        rows_by_dossier.setdefault(row["mahoso"], []).append(row)
    assert len({row["object_key"] for row in tai_lieu}) == len(tai_lieu)
    for dossier in expected:
        rows = rows_by_dossier.get(dossier["mahoso"], [])
        # Every file the simulator serves for this dossier is stored with its exact bytes.
        wanted = {(f["url_file"], f["sha256"], f["size"]) for f in dossier["files"]}
        stored = {(r["url_file"], r["sha256"], r["size"]) for r in rows}
        assert wanted == stored, f"{dossier['mahoso']}: files differ"
        for row in rows:
            assert sha256_of(s3_server, bucket, row["object_key"]) == row["sha256"]
    assert all(row["synced_at"] is not None for row in ho_so if row["mahoso"] in {d["mahoso"] for d in expected})
    return ho_so, tai_lieu


def test_every_dossier_arrives_once_intact_and_marked_synced(
    simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    sim = simulator_factory(
        "--seed",
        "7",
        "--units",
        "3",
        "--dossiers",
        "240",
        "--files-per-dossier",
        "2",
        "--file-size",
        "500-300000",
        "--token-lifetime",
        "5",
        env={"DONGBO_SIM_PASSWORD": PASSWORD},
    )
    expected = expected_dossiers(sim)
    units = sorted({d["madonvi"] for d in sim_dossiers(sim)})
    assert len(expected) >= 200 and len(units) == 3

    pipeline = Pipeline.configure(
        sim=sim,
        units=units,
        rabbit_url=rabbit_url,
        pg_url=pg_url,
        s3=s3_server,
        bucket=bucket,
        queue_prefix=queue_prefix,
        DONGBO_ONESTOP_PASSWORD=PASSWORD,
        DONGBO_LOG_LEVEL="DEBUG",
    )
    pipeline.dongbo("db", "upgrade")
    pipeline.start_all(downloaders=3)
    try:
        wait_until_synced(sim, pipeline, len(expected), timeout=240)
        topology = Topology(queue_prefix, (0.5, 1.0, 2.0))

        def drained():
            return not any(queue_depths(rabbit_url, topology.names()).values())

        wait_for(drained, timeout=30, what="every queue empty")
        ho_so, tai_lieu = check_archive(sim, pg_url, s3_server, bucket)
        marks = {d["mahoso"]: d["mark_count"] for d in sim_dossiers(sim)}
        fetches = {f["url_file"]: f["fetch_count"] for d in sim_dossiers(sim) for f in d["files"]}
        assert all(marks[d["mahoso"]] >= 1 for d in expected)
        objects = sorted(o.object_name for o in s3_server.client().list_objects(bucket, recursive=True))
        assert objects == sorted(r["object_key"] for r in tai_lieu)

        # A second run: every service stopped, then one complete poll by a fresh fetcher. It must hand nothing
        # on (every queue stays empty) and nothing in the archive, the bucket or the one-stop system may change.
        # Asserted on rows, objects, counters and queue depths once the poll has ended: nothing is left running
        # that could still change them, and no log text is read.
        pipeline.stop_all()
        again = pipeline.start("fetcher", "--once")
        assert again.process.wait(120) == 0, "the second poll must read every unit to the end"
        assert not any(queue_depths(rabbit_url, topology.names()).values()), "the second poll handed something on"
        assert (ho_so, tai_lieu) == database_rows(pg_url)
        assert marks == {d["mahoso"]: d["mark_count"] for d in sim_dossiers(sim)}
        assert fetches == {f["url_file"]: f["fetch_count"] for d in sim_dossiers(sim) for f in d["files"]}
        assert objects == sorted(o.object_name for o in s3_server.client().list_objects(bucket, recursive=True))

        # Secrets: a wrong password is refused with a clear line that does not repeat it.
        wrong = pipeline.start("fetcher", "--once", DONGBO_ONESTOP_PASSWORD="Sai-mật-khẩu-77aa")
        assert wrong.process.wait(60) == 1, "a one-shot poll that failed must say so in its exit status"
        assert "login-failed" in wrong.log() or "LoginFailed" in wrong.log()
        right = pipeline.start("fetcher", "--once")
        assert right.process.wait(60) == 0 and "handed on" in right.log()
        logs = pipeline.logs_whole()
        assert PASSWORD not in logs and "Sai-mật-khẩu-77aa" not in logs
        assert s3_server.secret_key not in logs
        assert not JWT.search(logs), "a token reached a log line"
    finally:
        pipeline.stop_all()
