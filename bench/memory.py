"""The two memory probes: the fetcher reading one huge sync response, a downloader storing a 1 GB file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

from bench.measure import RssSampler
from bench.pipeline_run import BENCH_ENV, run_pipeline
from bench.stack import Stack, fresh_world
from bench.workloads import LINKS, Workload
from harness.pipeline import queue_depths
from harness.services import ROOT

FETCHER_LIMIT_MB = 100
DOWNLOADER_LIMIT_MB = 150


def fetcher_probe(stack: Stack, dossiers: int, files: int, timeout: float) -> dict:
    """`dongbo fetcher --once` against one unit of `dossiers` dossiers: its peak RSS while it reads
    (and hands on) the whole response, which it must do as a stream."""
    workload = Workload("fetcher-probe", dossiers, files, (1024, 1024), units=1)
    seeding = time.monotonic()
    with fresh_world(stack, workload, LINKS["loopback"], database=True, listing=False) as world:
        seeded_s = time.monotonic() - seeding
        pending = world.synced_count()[1]
        pipeline = world.pipeline(**BENCH_ENV)
        log_path = pipeline.log_dir / "fetcher-probe.log"
        with RssSampler() as sampler, open(log_path, "wb") as log:
            started = time.monotonic()
            process = subprocess.Popen([sys.executable, "-m", "cli.main", "fetcher", "--once"], cwd=ROOT,
                                       env=pipeline._environ(), stdout=log, stderr=subprocess.STDOUT)
            sampler.watch("fetcher", process.pid)
            complete = True
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                # Too slow to finish here: what it read so far still tells whether memory grows with it.
                complete = False
                process.kill()
                process.wait()
            wall = time.monotonic() - started
        output = log_path.read_text(errors="replace")
        shutil.rmtree(pipeline.log_dir, ignore_errors=True)
        if complete and (process.returncode != 0 or "handed on" not in output):
            raise RuntimeError(f"the fetcher probe failed (exit {process.returncode}):\n{output[-3000:]}")
        handed_on = queue_depths(world.stack.rabbit_url, [f"{world.queue_prefix}.download"])[
            f"{world.queue_prefix}.download"
        ]
        peak = sampler.peak_of(process.pid) / 1e6
        read = _read_line(output)
        return {
            "probe": "fetcher",
            "dossiers": dossiers,
            "files_per_dossier": files,
            "dossiers_in_response": pending,
            "response_mb": round(read["bytes"] / 1e6, 1) if read else None,
            "complete": complete,
            "handed_on": handed_on,
            "seed_and_start_s": round(seeded_s, 1),
            "wall_s": round(wall, 1),
            "peak_rss_mb": round(peak, 1),
            "limit_mb": FETCHER_LIMIT_MB,
            "ok": peak < FETCHER_LIMIT_MB,
            "dossiers_per_s": round(handed_on / wall, 1),
            "rss_history_mb": sampler.history(process.pid, every=10.0),
        }


def downloader_probe(stack: Stack, size: int, timeout: float) -> dict:
    """The whole pipeline with one downloader moving one file of `size` bytes: the downloader's peak RSS."""
    workload = Workload("downloader-probe", 1, 1, (size, size), units=1)
    with fresh_world(stack, workload, LINKS["loopback"], database=True) as world:
        result = run_pipeline(world, "loopback", "downloader-probe", workers=1, threads_per_worker=4, timeout=timeout)
    peak = result.rss_mb["downloader"]["max_peak"]
    return {
        "probe": "downloader",
        "file_bytes": size,
        "wall_s": round(result.wall_s, 1),
        "mb_per_s": round(result.mb_per_s, 1),
        "peak_rss_mb": peak,
        "limit_mb": DOWNLOADER_LIMIT_MB,
        "ok": peak < DOWNLOADER_LIMIT_MB,
        "rss_mb": result.rss_mb,
    }


def _read_line(log: str) -> dict | None:
    """The parser's own account of what it read: `read N dossiers (M invalid) for madonvi=X from B bytes`."""
    found = re.search(r"read (\d+) dossiers \((\d+) invalid\) for madonvi=\S+ from (\d+) bytes", log)
    if not found:
        return None
    return {"dossiers": int(found[1]), "invalid": int(found[2]), "bytes": int(found[3])}
