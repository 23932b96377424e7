"""The benchmark script keeps working: `python -m bench.run --quick` runs end to end against the real
servers and writes results in the documented shape, with every dossier synced in every measurement."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.services import ROOT

pytestmark = pytest.mark.slow

RESULT_KEYS = {"link", "workload", "method", "workers", "threads", "dossiers", "files", "bytes", "wall_s", "retries",
               "dossiers_per_s", "mb_per_s", "synced", "rss_mb", "cpu_s"}


@pytest.mark.timeout(300)
def test_quick_benchmark_runs_and_writes_its_results(tmp_path):
    out = tmp_path / "quick.json"
    run = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, f"the benchmark failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    assert "| link | workload | method |" in run.stdout  # the table was printed

    document = json.loads(out.read_text(encoding="utf-8"))
    assert {"started", "machine", "settings", "results", "memory", "targets"} <= set(document)
    assert document["machine"]["cpus"] >= 1 and document["machine"]["python"].startswith("3.")

    results = document["results"]
    assert {r["method"] for r in results} == {"plain-copy", "sequential", "pipeline"}
    for result in results:
        assert set(result) >= RESULT_KEYS, result
        assert result["wall_s"] > 0 and result["dossiers"] > 0 and result["bytes"] > 0
        assert result["link"] == "loopback" and result["workload"] == "standard"
        if result["method"] != "plain-copy":
            # Every dossier the simulator expects was marked synced, by the script or by the pipeline.
            assert result["synced"] == result["dossiers"], result

    pipeline = next(r for r in results if r["method"] == "pipeline")
    assert pipeline["workers"] == 1 and pipeline["threads"] == pipeline["workers"] * 4
    assert set(pipeline["rss_mb"]) == {"fetcher", "downloader", "indexer", "acker"}
    assert all(peak["max_peak"] > 10 for peak in pipeline["rss_mb"].values())
    plain = next(r for r in results if r["method"] == "plain-copy")
    assert plain["threads"] == pipeline["threads"]  # the floor copies with the same concurrency

    targets = document["targets"]
    assert any("plain copy" in t["target"] for t in targets)
    assert all({"target", "value", "limit", "ok"} <= set(t) for t in targets)
