"""`python -m bench.run`: every measurement of the benchmark in one command (see bench/README.md).

For each link (loopback, WAN-like) and workload (standard ~200 KB files, tiny files) it measures, each
time on a freshly seeded simulator, bucket, database and queue prefix:
  1. the plain copy with 4, 8, 16 … threads (the same total concurrency as each pipeline run),
  2. the sequential script,
  3. the pipeline with 1, 2, 4 … downloader processes of DONGBO_DOWNLOAD_CONCURRENCY threads each;
then the memory probes. It prints the tables and writes everything to a JSON file.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench import report
from bench.baselines import plain_copy, sequential_script
from bench.measure import CpuDelta, DatabaseCpu, Result
from bench.memory import downloader_probe, fetcher_probe
from bench.pipeline_run import run_pipeline
from bench.stack import Stack, fresh_world
from bench.workloads import LINKS, Link, Workload, workload

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run (20 dossiers, loopback, 1 worker, standard files, no memory probes): checks the script works",
    )
    p.add_argument(
        "--dossiers",
        type=int,
        default=None,
        help="dossiers seeded on the loopback link "
        "(default 1000; a full run takes about 25 minutes on 2 cores; quick: 20)",
    )
    p.add_argument(
        "--wan-dossiers",
        type=int,
        default=None,
        help="dossiers seeded on the WAN-like link (default: as --dossiers; the sequential script needs ~0.4 s a "
        "dossier there, so 1000 cost it about 6 minutes)",
    )
    p.add_argument("--files", type=int, default=3, help="files per dossier (default 3)")
    p.add_argument("--links", default=None, help="comma-separated: loopback,wan (default both; quick: loopback)")
    p.add_argument(
        "--workers", default=None, help="downloader processes to try, comma-separated (default 1,2,4; quick: 1)"
    )
    p.add_argument("--threads", type=int, default=4, help="DONGBO_DOWNLOAD_CONCURRENCY of each downloader (default 4)")
    p.add_argument(
        "--also",
        default=None,
        metavar="WxT,...",
        help="more pipeline configurations, WORKERSxTHREADS (default 1x16: one downloader with 16 threads, "
        "the same concurrency as 4×4; quick: none)",
    )
    p.add_argument("--workloads", default=None, help="comma-separated: standard,tiny (default both; quick: standard)")
    p.add_argument("--no-sequential", action="store_true", help="skip the sequential script")
    p.add_argument("--memory", action="store_true", help="run only the memory probes (they also run in a full run)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    p.add_argument("--probes", default="downloader,fetcher", help="which memory probes (default downloader,fetcher)")
    p.add_argument(
        "--fetcher-timeout",
        type=float,
        default=180,
        help="seconds the fetcher probe may run (default 180); past that it is stopped and reported as PARTIAL, "
        "with its RSS over time. Reading all 200,000 dossiers takes about 75 s here",
    )
    p.add_argument(
        "--fetcher-dossiers", type=int, default=200_000, help="dossiers in the fetcher probe's sync response"
    )
    p.add_argument(
        "--fetcher-files", type=int, default=3, help="files per dossier in the fetcher probe (more = a bigger response)"
    )
    p.add_argument("--file-gb", type=float, default=1.0, help="size of the downloader probe's file in GiB (default 1)")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="attach py-spy to every pipeline service and write folded stacks to DIR "
        "(python -m bench.profile reads them)",
    )
    p.add_argument(
        "--profile-idle", action="store_true", help="with --profile: sample waiting threads too (wall-clock view)"
    )
    p.add_argument("--timeout", type=float, default=900, help="seconds any one measurement may take")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (default bench/results/<timestamp>.json)")
    args = p.parse_args(argv)
    quick = args.quick
    args.dossiers = args.dossiers or (20 if quick else 1000)
    args.wan_dossiers = args.wan_dossiers or args.dossiers
    args.links = _names(args.links or ("loopback" if quick else "loopback,wan"), LINKS)
    args.workers = [int(n) for n in (args.workers or ("1" if quick else "1,2,4")).split(",")]
    also = args.also if args.also is not None else ("" if quick else "1x16")
    try:
        extra = [tuple(int(n) for n in part.lower().split("x")) for part in also.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--also: {also!r} is not WORKERSxTHREADS[,...]") from None
    # (workers, threads per worker) of every pipeline run, in order, without repeats
    args.configs = list(dict.fromkeys([(w, args.threads) for w in args.workers] + extra))
    args.workloads = _names(args.workloads or ("standard" if quick else "standard,tiny"), {"standard": 1, "tiny": 1})
    if quick and not args.memory:
        args.no_memory = True
    return args


def _names(text: str, known) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in known:
            raise SystemExit(f"unknown name {name!r}; known: {', '.join(known)}")
    return names


def log(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", flush=True)


# -- the three methods ----------------------------------------------------------------------------


def measure_plain(stack: Stack, load: Workload, link: Link, threads: int) -> Result:
    with fresh_world(stack, load, link, database=False) as world:
        cpu = CpuDelta(world.server_pids() | {"plain-copy": psutil.Process().pid})
        wall = plain_copy(
            world.corpus.files,
            s3_endpoint=stack.s3.endpoint,
            access_key=stack.s3.access_key,
            secret_key=stack.s3.secret_key,
            bucket=world.bucket,
            threads=threads,
        )
        used = cpu.stop()
        stored = sum(1 for _ in stack.s3.client().list_objects(world.bucket, recursive=True))
        result = Result(
            link=link.name,
            workload=load.name,
            method="plain-copy",
            workers=None,
            threads=threads,
            dossiers=world.corpus.dossiers,
            files=len(world.corpus.files),
            bytes=world.corpus.bytes,
            wall_s=wall,
            cpu_s=used,
        )
        if stored != len(world.corpus.files):
            raise RuntimeError(f"the plain copy stored {stored} of {len(world.corpus.files)} files")
        return result


def measure_sequential(stack: Stack, load: Workload, link: Link) -> Result:
    with fresh_world(stack, load, link, database=True) as world:
        cpu = CpuDelta(world.server_pids() | {"sequential": psutil.Process().pid})
        with DatabaseCpu(world.database_url) as database_cpu:
            wall, done = sequential_script(
                world.sim.api_url,
                world.corpus.units,
                username="admin_sotaichinh",
                password="1",
                s3_endpoint=stack.s3.endpoint,
                access_key=stack.s3.access_key,
                secret_key=stack.s3.secret_key,
                bucket=world.bucket,
                database_url=world.database_url,
            )
        used = cpu.stop() | {"postgresql": database_cpu.stop()}
        synced, pending = world.synced_count()
        if pending or synced < world.corpus.dossiers:
            raise RuntimeError(f"the sequential script left {pending} dossiers unsynced")
        return Result(
            link=link.name,
            workload=load.name,
            method="sequential",
            workers=None,
            threads=1,
            dossiers=world.corpus.dossiers,
            files=len(world.corpus.files),
            bytes=world.corpus.bytes,
            wall_s=wall,
            synced=synced,
            cpu_s=used,
        )


def measure_pipeline(
    stack: Stack,
    load: Workload,
    link: Link,
    workers: int,
    threads: int,
    timeout: float,
    profile: Path | None = None,
    profile_idle: bool = False,
) -> Result:
    with fresh_world(stack, load, link, database=True) as world:
        return run_pipeline(
            world,
            link.name,
            load.name,
            workers=workers,
            threads_per_worker=threads,
            timeout=timeout,
            profile_dir=profile,
            profile_idle=profile_idle,
        )


# -- the run --------------------------------------------------------------------------------------


def plan(args) -> list[tuple[str, Link, Workload, tuple[int, int]]]:
    """(method, link, workload, (workers, threads per worker)) in the order they run; the plain copy runs
    once per total concurrency of the pipeline runs, the sequential script once."""
    steps = []
    for link_name in args.links:
        link = LINKS[link_name]
        count = args.dossiers if link_name == "loopback" else args.wan_dossiers
        for load_name in args.workloads:
            load = workload(load_name, count, args.files)
            for total in sorted({w * t for w, t in args.configs}):
                steps.append(("plain-copy", link, load, (1, total)))
            if not args.no_sequential:
                steps.append(("sequential", link, load, (1, 1)))
            for config in args.configs:
                steps.append(("pipeline", link, load, config))
    return steps


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    out = args.out or RESULTS_DIR / f"{started:%Y%m%dT%H%M%SZ}.json"
    info = report.machine()
    log(
        f"machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, Python {info['python']}, "
        f"RabbitMQ {info['rabbitmq']}, PostgreSQL {info['postgresql']}, {info['s3']}; "
        f"load {info['load_average_at_start']}"
    )
    steps = [] if args.memory else plan(args)
    settings = {
        "quick": args.quick,
        "links": {name: LINKS[name].as_dict() for name in args.links},
        "workloads": sorted({(s[2].name, s[1].name, s[2].describe()) for s in steps}),
        "pipeline_configs": [f"{w}x{t}" for w, t in args.configs],
    }
    if "wan" in args.links and args.wan_dossiers != args.dossiers and steps:
        log(f"note: the WAN-like link moves {args.wan_dossiers} dossiers, the loopback link {args.dossiers}")
    stack = Stack.start()
    results: list[Result] = []
    memory: list[dict] = []
    failures = 0
    try:
        for method, link, load, (workers, per_worker) in steps:
            threads = workers * per_worker
            what = f"{link.name:8} {load.name:8} {method:10} " + (
                f"{workers} worker(s) × {per_worker} threads"
                if method == "pipeline"
                else f"{threads} threads"
                if method == "plain-copy"
                else "one at a time"
            )
            log(f"{what}: {load.describe()} …")
            try:
                if method == "plain-copy":
                    result = measure_plain(stack, load, link, threads)
                elif method == "sequential":
                    result = measure_sequential(stack, load, link)
                else:
                    result = measure_pipeline(
                        stack, load, link, workers, per_worker, args.timeout, args.profile, args.profile_idle
                    )
            except Exception:
                failures += 1
                log(f"{what}: FAILED\n{traceback.format_exc()}")
                continue
            results.append(result)
            log(
                f"{what}: {result.wall_s:.1f}s, {result.dossiers} dossiers ({result.dossiers_per_s:.1f}/s), "
                f"{result.mb_per_s:.1f} MB/s" + (f", synced {result.synced}" if result.synced is not None else "")
            )
        if args.memory or not args.no_memory:
            memory = run_memory_probes(stack, args)
    finally:
        stack.stop()
    checks = report.targets(results, memory)
    report.write_json(out, started=started, info=info, settings=settings, results=results, memory=memory, checks=checks)
    print()
    print(
        f"dongbo benchmark, {started:%Y-%m-%d %H:%M} UTC — {info['cpus']} CPUs, Python {info['python']}, "
        f"RabbitMQ {info['rabbitmq']}, PostgreSQL {info['postgresql']}, {info['s3']}"
    )
    for description in settings["workloads"]:
        print(f"  {description[1]} {description[0]}: {description[2]}")
    for name in args.links:
        print(f"  {name}: {LINKS[name].describe()}")
    if results:
        print()
        print(report.table(results))
        print()
        print(report.stages_table(results))
    if memory:
        print()
        print(report.memory_table(memory))
    if checks:
        print()
        print(report.targets_table(checks))
    print(f"\nresults written to {out}")
    return 1 if failures else 0


def run_memory_probes(stack: Stack, args) -> list[dict]:
    memory = []
    probes = {
        "downloader": lambda: downloader_probe(stack, int(args.file_gb * 1024**3), timeout=args.timeout),
        "fetcher": lambda: fetcher_probe(
            stack, args.fetcher_dossiers, args.fetcher_files, timeout=args.fetcher_timeout
        ),
    }
    for name in _names(args.probes, probes):
        probe = probes[name]
        log(f"memory probe: {name} …")
        started = time.monotonic()
        try:
            result = probe()
        except Exception as exc:
            log(f"memory probe {name}: FAILED\n{traceback.format_exc()}")
            memory.append({"probe": name, "error": f"{type(exc).__name__}: {exc}"[:500]})
            continue
        memory.append(result)
        log(
            f"memory probe {name}: peak RSS {result['peak_rss_mb']:.0f} MB (limit {result['limit_mb']}), "
            f"{time.monotonic() - started:.0f}s"
        )
    return memory


if __name__ == "__main__":
    sys.exit(main())
