"""The first sync of a unit: its whole history in one answer, moved end to end (fetched, stored, indexed,
marked synced), with every service process's peak memory.

    .venv/bin/python -m bench.first_sync                      # 200,000 dossiers × 2 tiny files, one unit
    .venv/bin/python -m bench.first_sync --dossiers 20000     # scaled down; the figures say so
    .venv/bin/python -m bench.first_sync --dossiers 3000 --profile DIR   # py-spy on every service

The simulator is seeded with one unit of N dossiers of 2 files of 1–2 KB each (it holds back ~5 % without a
result and ~2 % without files; the rest is what must move); then the four services start and the clock runs
until the simulator counts every one of them as synced. The same stack and per-run isolation as
`bench.run` (a fresh simulator, bucket, database and queue prefix). A scaled-down run is extrapolated to
200,000 linearly and labelled as such: the per-dossier cost stays flat if memory stays flat, which is
what the RSS peaks show.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.baselines import plain_copy
from bench.measure import CpuDelta
from bench.memory import DOWNLOADER_LIMIT_MB, FETCHER_LIMIT_MB
from bench.pipeline_run import run_pipeline
from bench.stack import Stack, World, fresh_world
from bench.workloads import LINKS, Corpus, Workload

FULL = 200_000
TARGET_PER_S = 250
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.first_sync", description=__doc__.split("\n\n")[0])
    p.add_argument("--dossiers", type=int, default=FULL, help=f"dossiers seeded in the unit (default {FULL})")
    p.add_argument("--workers", type=int, default=1, help="downloader processes (default 1)")
    p.add_argument("--threads", type=int, default=16, help="DONGBO_DOWNLOAD_CONCURRENCY of each (default 16)")
    p.add_argument("--timeout", type=float, default=7200, help="seconds the run may take (default 7200)")
    p.add_argument("--profile", type=Path, default=None, help="attach py-spy to every service, files in DIR")
    p.add_argument("--floor-dossiers", type=int, default=20_000,
                   help="after the pipeline, a plain copy of the files of this many of the same dossiers, at the "
                        "same total concurrency: the machine's floor (default 20000; 0 skips it)")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/first-sync-<ts>.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workload = Workload("first-sync", args.dossiers, 2, (1024, 2048), units=1)
    stack = Stack.start()
    try:
        seeding = time.monotonic()
        with fresh_world(stack, workload, LINKS["loopback"], database=True, listing=False,
                         last=True) as world:
            seeded_s = time.monotonic() - seeding
            print(f"seeded {workload.describe()} in one unit in {seeded_s:.0f}s; "
                  f"{world.corpus.dossiers} to move", flush=True)
            result = run_pipeline(world, "loopback", "first-sync", workers=args.workers,
                                  threads_per_worker=args.threads, timeout=args.timeout,
                                  profile_dir=args.profile)
            floor = plain_copy_floor(world, args.floor_dossiers, args.workers * args.threads)
    finally:
        stack.stop()
    report = summarize(result.as_dict(), args, seeded_s)
    report["plain_copy_floor"] = floor
    if floor:
        # Per dossier, how much longer the pipeline took than nothing but the copy of its files.
        report["pipeline_vs_plain_copy"] = round(floor["dossiers_per_s"] / report["dossiers_per_s"], 2)
    out = args.out or RESULTS / f"first-sync-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "run"}, indent=2))
    print(f"written to {out}")
    return 0 if report["targets_met"] else 1


def plain_copy_floor(world: World, dossiers: int, threads: int) -> dict | None:
    """The same files copied by `bench.baselines.plain_copy` (GET, put, nothing else) after the pipeline has
    moved them, into keys of their own: what this machine does per dossier with no queue, database or
    acknowledgement. A sample of the dossiers, the first `dossiers` of the listing."""
    if dossiers <= 0:
        return None
    corpus = Corpus.of(world.sim.root)
    sample = corpus.listing[:dossiers]
    files = [(f["url_file"], f["size"], f"floor/{d['mahoso']}/{n}") for d in sample for n, f in enumerate(d["files"])]
    cpu = CpuDelta(world.server_pids() | {"plain-copy": psutil.Process().pid})
    s3 = world.stack.s3
    wall = plain_copy(files, s3_endpoint=s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key,
                      bucket=world.bucket, threads=threads)
    used = cpu.stop()
    print(f"plain copy of the files of {len(sample)} dossiers ({len(files)} files), {threads} threads: {wall:.1f}s",
          flush=True)
    return {"dossiers": len(sample), "files": len(files), "threads": threads, "wall_s": round(wall, 2),
            "dossiers_per_s": round(len(sample) / wall, 1), "cpu_s": used,
            "cpu_ms_per_dossier": round(sum(used.values()) / len(sample) * 1000, 2)}


def summarize(run: dict, args: argparse.Namespace, seeded_s: float) -> dict:
    rss = run["rss_mb"]
    per_s = run["dossiers_per_s"]
    fetcher_mb = rss.get("fetcher", {}).get("max_peak")
    downloader_mb = rss.get("downloader", {}).get("max_peak")
    scaled = args.dossiers != FULL
    return {
        "dossiers_seeded": args.dossiers,
        "dossiers_moved": run["dossiers"],
        "synced": run["synced"],
        "workers_x_threads": f"{args.workers} × {args.threads}",
        "seed_s": round(seeded_s, 1),
        "wall_s": run["wall_s"],
        "startup_s": run["startup_s"],
        "dossiers_per_s": per_s,
        "peak_rss_mb": {service: peaks.get("max_peak") for service, peaks in rss.items()},
        "cpu_s": run["cpu_s"],
        "stages_s": run["stages_s"],
        # Linear: a scaled-down run says what 200,000 would take at the same rate. Marked as an estimate.
        "extrapolated_to_200000": None if not scaled else {
            "estimate": True,
            "wall_s": round(FULL * 0.93 / per_s) if per_s else None,
        },
        "targets": {
            f"at least {TARGET_PER_S} dossiers/s": per_s >= TARGET_PER_S,
            f"fetcher under {FETCHER_LIMIT_MB} MB": fetcher_mb is not None and fetcher_mb < FETCHER_LIMIT_MB,
            f"downloaders under {DOWNLOADER_LIMIT_MB} MB": downloader_mb is not None
            and downloader_mb < DOWNLOADER_LIMIT_MB,
        },
        "targets_met": per_s >= TARGET_PER_S and (fetcher_mb or 1e9) < FETCHER_LIMIT_MB
        and (downloader_mb or 1e9) < DOWNLOADER_LIMIT_MB,
        "run": run,
    }


if __name__ == "__main__":
    raise SystemExit(main())
