"""One timed run of the pipeline: the four services as processes, from their start until every dossier
the simulator holds is marked synced."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from datetime import datetime
from pathlib import Path

from bench.measure import CpuDelta, DatabaseCpu, Result, RssSampler, rabbitmq_pid, wait_until
from bench.profile import Recorder
from bench.stack import World

# Settings of the benchmark's own configuration (not dongbo's defaults; see docs/settings.md):
# - the fetcher polls once at start and not again during the run (a later poll would only re-read
#   dossiers already in flight);
# - the acker flushes a batch after 0.5 s instead of 2 s, so the tail of the run is not a timer.
RETRY = re.compile(r"; retry \d+ via ")

BENCH_ENV = {
    "DONGBO_POLL_INTERVAL": "3600",
    "DONGBO_ACK_BATCH_SECONDS": "0.5",
    "DONGBO_LOG_LEVEL": "INFO",
    "DONGBO_LOG_JSON": "true",
}


class SyncedWatch:
    """Whether every dossier is synced, asked of the simulator rarely while many remain.

    The simulator counts by scanning every dossier: at 200,000 one count takes it 0.1-0.3 s of CPU on
    the cores the pipeline runs on. Asked every 0.2 s through a 16-minute first sync, the counting cost the
    simulator about a third of a core, so the measurement slowed what it measured. The next question
    waits a quarter of the time the remaining dossiers should take at the rate so far (0.2-5 s): the end
    is still seen within 0.25 s, and a whole first sync asks a few hundred times instead of thousands.
    """

    FIRST, LEAST, MOST = 0.5, 0.2, 5.0

    def __init__(self, world: World, total: int, started: float):
        self.world = world
        self.total = total
        self.started = started
        self.next_at = started + self.FIRST
        self.asked = 0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now < self.next_at:
            return False
        synced, pending = self.world.synced_count()
        self.asked += 1
        if pending == 0 and synced >= self.total:
            return True
        rate = synced / (now - self.started)
        wait = (self.total - synced) / rate / 4 if rate > 0 else self.FIRST
        self.next_at = time.monotonic() + min(self.MOST, max(self.LEAST, wait))
        return False


def run_pipeline(world: World, link: str, workload: str, *, workers: int, threads_per_worker: int,
                 timeout: float, extra_env: dict[str, str] | None = None, profile_dir: Path | None = None,
                 profile_idle: bool = False) -> Result:
    """`profile_dir`: attach py-spy to every service process and write its samples there."""
    corpus = world.corpus
    pipeline = world.pipeline(**BENCH_ENV, DONGBO_DOWNLOAD_CONCURRENCY=str(threads_per_worker), **(extra_env or {}))
    others = CpuDelta(world.server_pids() | {"rabbitmq": rabbitmq_pid(world.stack.rabbit_url)})
    with RssSampler() as sampler, DatabaseCpu(world.database_url) as database_cpu:
        started_wall = time.time()
        started = time.monotonic()
        pipeline.start("fetcher")
        for _ in range(workers):
            pipeline.start("downloader")
        pipeline.start("indexer")
        pipeline.start("acker")
        for process in pipeline.processes:
            sampler.watch(process.name, process.process.pid)
        recorder = Recorder(profile_dir, idle=profile_idle) if profile_dir else None
        if recorder:
            for process in pipeline.processes:
                recorder.attach(process.process.pid, f"{link}-{workload}-w{workers}-{process.log_path.stem}")

        def check() -> None:
            dead = [p for p in pipeline.processes if not p.alive()]
            if dead:
                raise RuntimeError(f"{dead[0].name} exited {dead[0].process.returncode}:\n{dead[0].log()[-3000:]}")

        try:
            ended = wait_until(SyncedWatch(world, corpus.dossiers, started), timeout=timeout, interval=0.05,
                               check=check, what=f"{corpus.dossiers} dossiers marked synced")
        except BaseException:
            print(pipeline.logs()[-6000:])
            if recorder:
                recorder.stop()
            pipeline.stop_all()
            raise
        if recorder:
            recorder.stop()
        wall = ended - started
        cpu_others = others.stop()
        cpu_others["postgresql"] = database_cpu.stop()
        rss = sampler.peaks()
        cpu = sampler.cpu()
        pipeline.stop_all()
    synced, _pending = world.synced_count()
    cpu.update(cpu_others)
    lines = [line["message"] for process in pipeline.processes for line in _lines(process)]
    result = Result(
        link=link,
        workload=workload,
        method="pipeline",
        workers=workers,
        threads=workers * threads_per_worker,
        dossiers=corpus.dossiers,
        files=len(corpus.files),
        bytes=corpus.bytes,
        wall_s=wall,
        synced=synced,
        startup_s=_startup(pipeline, started_wall),
        rss_mb=rss,
        cpu_s=cpu,
        stages_s=_stages(pipeline, started_wall),
        retries=sum(1 for text in lines if RETRY.search(text)),
        dead_letters=sum(1 for text in lines if "dead-lettered" in text),
    )
    if result.retries or result.dead_letters:
        result.notes.append(
            f"{result.retries} retries and {result.dead_letters} dead letters; logs kept in {pipeline.log_dir}"
        )
    else:
        shutil.rmtree(pipeline.log_dir, ignore_errors=True)
    return result


def _lines(process) -> list[dict]:
    lines = []
    for text in process.log().splitlines():
        if text.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(text))
    return lines


def _at(line: dict, started_wall: float) -> float:
    return round(datetime.fromisoformat(line["time"]).timestamp() - started_wall, 2)


def _startup(pipeline, started_wall: float) -> float | None:
    """Seconds until every service was ready: each consumer consuming, and the fetcher starting its poll
    (Python imports, connections, schema check, queue declarations)."""
    times = []
    for process in pipeline.processes:
        marker = "fetcher: starting" if process.name == "fetcher" else f"{process.name}: consuming"
        found = [_at(line, started_wall) for line in _lines(process) if line["message"].startswith(marker)]
        if found:
            times.append(found[0])
    return max(times) if times else None


def _stages(pipeline, started_wall: float) -> dict[str, float]:
    """When the fetcher had handed everything on, and when each stage handled its last dossier."""
    stages: dict[str, float] = {}
    markers = {
        "fetcher": "handed on",
        "downloader": "files stored",
        "indexer": "indexed with",
        "acker": "marked synced",
    }
    for process in pipeline.processes:
        marker = markers.get(process.name)
        times = [_at(line, started_wall) for line in _lines(process) if marker in line["message"]]
        if process.name == "fetcher":
            starts = [
                _at(line, started_wall) for line in _lines(process) if line["message"].startswith("fetcher: starting")
            ]
            if starts:
                stages["fetcher_started"] = starts[0]
        if times:
            key = f"{process.name}_last"
            stages[key] = max(stages.get(key, 0.0), max(times))
            if process.name == "downloader":
                first = min(times)
                stages["downloader_first"] = min(stages.get("downloader_first", first), first)
    return stages
