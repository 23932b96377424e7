"""The whole system natively from the Procfile under honcho, as machines without Docker run it, against
the simulator: `dongbo status --json` must report every dossier synced, and each process's health
endpoint must answer."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from harness.pipeline import Pipeline, expected_dossiers, sim_dossiers
from harness.services import ROOT, wait_for

pytestmark = pytest.mark.slow



def honcho_base_port(types: int = 12) -> int:
    """A base port below the kernel's ephemeral range whose honcho ports (base + 100 per process type, + 1
    per extra instance) are all free now: one taken by another test's connection would stop its process,
    and honcho would stop every other with it."""
    def free(port: int) -> bool:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False

    for _ in range(200):
        base = random.randrange(20000, 31000 - 100 * types)
        if all(free(base + 100 * kind + extra) for kind in range(types) for extra in range(3)):
            return base
    raise AssertionError("no free block of ports for honcho")

def test_the_procfile_brings_up_a_system_that_syncs_everything(simulator_factory, rabbit_url, pg_url, s3_server, bucket,
                                                                queue_prefix, tmp_path: Path):
    sim = simulator_factory("--seed", "21", "--units", "2", "--dossiers", "40", "--files-per-dossier", "2",
                            "--file-size", "1000-50000")
    expected = expected_dossiers(sim)
    units = sorted({d["madonvi"] for d in sim_dossiers(sim)})
    pipeline = Pipeline.configure(sim=sim, units=units, rabbit_url=rabbit_url, pg_url=pg_url, s3=s3_server,
                                  bucket=bucket, queue_prefix=queue_prefix)
    pipeline.dongbo("db", "upgrade")

    base_port = honcho_base_port()
    env = pipeline._environ(PORT=str(base_port))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    with open(tmp_path / "honcho.log", "wb") as log:  # honcho keeps its own copy of the descriptor
        honcho = subprocess.Popen([str(Path(sys.executable).parent / "honcho"), "-f", str(ROOT / "Procfile"),
                                   "-d", str(ROOT), "start", "-p", str(base_port), "-c", "downloader=2"],
                                  cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        def status() -> dict:
            result = pipeline.dongbo("status", "--json", check=False)
            return json.loads(result.stdout)

        def all_synced():
            if honcho.poll() is not None:
                raise AssertionError((tmp_path / "honcho.log").read_text(errors="replace")[-3000:])
            return status()["totals"]["synced"] == len(expected)

        wait_for(all_synced, timeout=180, interval=1, what="dongbo status --json reporting every dossier synced")
        report = status()
        assert set(report["units"]) == set(units)
        assert report["totals"]["failed"] == 0
        assert {s["service"] for s in report["services"]} >= {"fetcher", "downloader", "indexer", "acker"}
        assert all(d["synced"] for d in sim_dossiers(sim) if d["mahoso"] in {e["mahoso"] for e in expected})

        # honcho's ports: fetcher, downloader ×2, indexer, acker — each serves /healthz and /metrics.
        ports = [base_port, base_port + 100, base_port + 101, base_port + 200, base_port + 300]
        for port in ports:
            health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert health.status_code == 200, (port, health.text)
        metrics = requests.get(f"http://127.0.0.1:{base_port + 200}/metrics", timeout=5).text
        assert 'dongbo_dossiers_total{service="indexer"}' in metrics
        assert 'dongbo_stage_seconds_count{service="indexer"}' in metrics
        downloaded = sum(float(line.split()[-1]) for port in (base_port + 100, base_port + 101)
                         for line in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines()
                         if line.startswith('dongbo_files_total{outcome="stored"}'))
        assert downloaded == sum(len({f["url_file"] for f in d["files"]}) for d in expected)
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGTERM)
            try:
                honcho.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
