"""Corrections under chaos: every service (fetcher, downloader, indexer, acker, corrections worker) is killed
with SIGKILL and restarted at random while corrections are sent back and synced in. Afterwards no correction
is lost, none was applied twice on the one-stop system, and every object of every earlier version is still
readable, byte for byte. Bounded to well under 90 seconds."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from harness.pipeline import Pipeline, expected_dossiers, wait_until_synced
from tests.test_corrections import (
    RETRY_DELAYS,
    archive_matches_sim,
    object_sha256,
    rows,
    sim_stats,
    two_type_dossiers,
    waiting,
)

pytestmark = pytest.mark.slow

SERVICES = ("fetcher", "downloader", "indexer", "acker", "corrections")


def test_no_correction_lost_or_doubled_and_no_version_lost_under_kills(
    simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix, tmp_path: Path
):
    rng = random.Random(20261201)
    sim = simulator_factory("--seed", "5", "--units", "1", "--dossiers", "14", "--files-per-dossier", "2",
                            "--file-size", "1500-5000")
    expected = expected_dossiers(sim)
    pipeline = Pipeline.configure(sim=sim, units=[expected[0]["madonvi"]], rabbit_url=rabbit_url, pg_url=pg_url,
                                  s3=s3_server, bucket=bucket, queue_prefix=queue_prefix, DONGBO_POLL_INTERVAL="1",
                                  DONGBO_RETRY_DELAYS=RETRY_DELAYS, DONGBO_INFLIGHT_TIMEOUT="10")
    pipeline.dongbo("db", "upgrade")
    for name in SERVICES:
        pipeline.start(name)
    try:
        wait_until_synced(sim, pipeline, len(expected), timeout=90)
        targets = two_type_dossiers(expected)[:6]
        assert len(targets) >= 4
        before = {r["object_key"]: r["sha256"] for r in rows(pg_url, "SELECT object_key, sha256 FROM tai_lieu")}
        replaced = delete = 0
        kills: Counter[str] = Counter()
        for number, dossier in enumerate(targets):
            code = sorted(f["matailieu"] for f in dossier["files"])[0]
            if number % 2 == 0:
                path = tmp_path / f"scan-{number}.pdf"
                path.write_bytes(b"%PDF-1.4\n% correction " + str(number).encode() + b"\n" + rng.randbytes(3000))
                pipeline.dongbo("file", "replace", dossier["mahoso"], code, str(path), "--by", f"chaos-{number}")
                replaced += 1
            else:
                pipeline.dongbo("file", "delete", dossier["mahoso"], code, "--by", f"chaos-{number}")
                delete += 1
            # Kills while the corrections are being sent and the changed dossiers synced back.
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                alive = [p for p in pipeline.processes if p.alive()]
                victim = rng.choice(alive)
                victim.kill()
                kills[victim.name] += 1
                pipeline.start(victim.name)
                time.sleep(rng.uniform(0.4, 1.2))
        for name in SERVICES:  # each at least once more
            victim = next(p for p in reversed(pipeline.processes) if p.name == name and p.alive())
            victim.kill()
            kills[name] += 1
            pipeline.start(name)
        assert set(kills) == set(SERVICES) and sum(kills.values()) >= 10, kills

        def settled():
            statuses = [r["status"] for r in rows(pg_url, "SELECT status FROM hieu_chinh")]
            return (len(statuses) == len(targets) and set(statuses) == {"applied"}
                    and all(archive_matches_sim(sim, pg_url, d["mahoso"]) for d in targets))

        waiting(pipeline, settled, 60, "every correction applied and synced back")
        stats = sim_stats(sim)
        assert (stats["file_replacements"], stats["file_deletions"]) == (replaced, delete)
        for key, sha256 in before.items():
            assert object_sha256(s3_server, bucket, key) == sha256, key
        keys = [r["object_key"] for r in rows(pg_url, "SELECT object_key FROM tai_lieu")]
        assert len(keys) == len(set(keys)) and set(before) <= set(keys)
        assert requests.get(sim.root + "/_sim/health", timeout=5).ok
    finally:
        pipeline.stop_all()
