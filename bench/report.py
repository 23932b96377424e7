"""The results as a table (printed, and pasted into bench/README.md) and as JSON (to compare runs)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.measure import Result

# Best pipeline time ÷ plain-copy time at the same concurrency, by (link, workload).
RATIO_TARGETS = {
    ("loopback", "standard"): 1.2,
    ("wan", "standard"): 1.1,
    ("loopback", "tiny"): 1.5,
    ("wan", "tiny"): 1.5,
}
SEQUENTIAL_TARGET = 5.0  # sequential time ÷ best pipeline time, WAN-like link


def machine() -> dict:
    info = {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    info.update(_server_versions())
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    import psutil

    return round(psutil.virtual_memory().total / 1024**3, 1)


def _server_versions() -> dict:
    versions: dict[str, str] = {}
    try:
        out = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True, timeout=60).stdout.split()
        versions["rabbitmq"] = out[-1] if out else "unknown"
    except Exception as exc:
        versions["rabbitmq"] = f"unknown ({type(exc).__name__})"
    try:
        import sqlalchemy

        from harness.services import pg_admin_url

        engine = sqlalchemy.create_engine(pg_admin_url())
        with engine.connect() as connection:
            versions["postgresql"] = connection.execute(sqlalchemy.text("SHOW server_version")).scalar_one()
        engine.dispose()
    except Exception as exc:
        versions["postgresql"] = f"unknown ({type(exc).__name__})"
    try:
        from harness.services import _weed_binary

        out = subprocess.run([_weed_binary(), "version"], capture_output=True, text=True, timeout=30).stdout
        versions["s3"] = "SeaweedFS " + (out.split()[2] if len(out.split()) > 2 else out.strip())
    except Exception as exc:
        versions["s3"] = f"unknown ({type(exc).__name__})"
    return versions


# -- comparisons --------------------------------------------------------------------------------


def _group(results: list[Result]) -> dict[tuple[str, str], list[Result]]:
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.link, r.workload), []).append(r)
    return groups


def plain_for(results: list[Result], r: Result) -> Result | None:
    """The plain copy of the same link and workload with the same total concurrency."""
    for other in results:
        if (other.method == "plain-copy" and other.link == r.link and other.workload == r.workload
                and other.threads == r.threads):
            return other
    return None


def floor_for(results: list[Result], r: Result) -> Result | None:
    """The fastest plain copy of the same link and workload."""
    plains = [o for o in results if o.method == "plain-copy" and o.link == r.link and o.workload == r.workload]
    return min(plains, key=lambda o: o.wall_s) if plains else None


def targets(results: list[Result], memory: list[dict]) -> list[dict]:
    checks: list[dict] = []
    for (link, workload), group in _group(results).items():
        pipelines = [r for r in group if r.method == "pipeline"]
        if not pipelines:
            continue
        best = min(pipelines, key=lambda r: r.wall_s)
        plain = plain_for(results, best)
        floor_for(results, best)
        limit = RATIO_TARGETS.get((link, workload))
        if plain and limit:
            ratio = best.wall_s / plain.wall_s
            ratios = [(p.wall_s / plain_for(results, p).wall_s, p) for p in pipelines if plain_for(results, p)]
            best_ratio, most_even = min(ratios, key=lambda pair: pair[0])
            checks.append(
                {
                    "target": f"{workload}, {link}: fastest pipeline within {limit:g}× of the plain copy",
                    "value": round(ratio, 2),
                    "limit": limit,
                    "ok": ratio <= limit,
                    "detail": f"pipeline {_shape(best)} {best.wall_s:.1f}s "
                    f"vs plain copy {plain.threads} threads {plain.wall_s:.1f}s"
                    + (
                        f"; without the pipeline's {best.startup_s:.1f}s start-up: "
                        f"{(best.wall_s - best.startup_s) / plain.wall_s:.2f}×"
                        if best.startup_s is not None
                        else ""
                    )
                    + (
                        f"; closest to its plain copy: {_shape(most_even)} at {best_ratio:.2f}×"
                        if most_even is not best
                        else ""
                    )
                    + (f"; {best.dossiers_per_s:.1f} dossiers/s" if workload == "tiny" else ""),
                }
            )
        sequential = next((r for r in group if r.method == "sequential"), None)
        if sequential and link == "wan" and workload == "standard":
            speedup = sequential.wall_s / best.wall_s
            checks.append(
                {
                    "target": f"{workload}, {link}: fastest pipeline at least {SEQUENTIAL_TARGET:g}× faster "
                    "than the sequential script",
                    "value": round(speedup, 2),
                    "limit": SEQUENTIAL_TARGET,
                    "ok": speedup >= SEQUENTIAL_TARGET,
                    "detail": f"sequential {sequential.wall_s:.1f}s vs pipeline {_shape(best)} {best.wall_s:.1f}s",
                }
            )
    for probe in memory:
        if "error" in probe:
            checks.append(
                {
                    "target": f"{probe['probe']} memory probe",
                    "value": None,
                    "limit": None,
                    "ok": False,
                    "detail": probe["error"],
                }
            )
            continue
        if probe["probe"] == "fetcher":
            what = f"fetcher reading a sync response of {probe['dossiers_in_response']} dossiers"
            detail = (
                f"{probe['response_mb']:.0f} MB of JSON read in {probe['wall_s']:.0f}s"
                if probe["complete"]
                else f"PARTIAL: stopped after {probe['wall_s']:.0f}s with {probe['handed_on']} dossiers handed on"
            )
        else:
            what = f"downloader storing a {probe['file_bytes'] / 1e9:.2f} GB file"
            detail = f"{probe['wall_s']:.0f}s"
        checks.append(
            {
                "target": f"{what}: peak RSS under {probe['limit_mb']} MB",
                "value": probe["peak_rss_mb"],
                "limit": probe["limit_mb"],
                "ok": probe["ok"],
                "detail": detail,
            }
        )
    return checks


# -- the table ----------------------------------------------------------------------------------


def _rss(r: Result, service: str, both: bool = False) -> str:
    peak = r.rss_mb.get(service)
    if not peak:
        return "–"
    if both and peak["processes"] > 1:
        return f"{peak['sum_of_peaks']:.0f} ({peak['max_peak']:.0f})"
    return f"{peak['max_peak']:.0f}"


def table(results: list[Result]) -> str:
    """A Markdown table; one block per link and workload."""
    head = (
        "| link | workload | method | workers × threads | dossiers | MB | wall s | dossiers/s | MB/s "
        "| ÷ plain (same threads) | ÷ fastest plain | CPU s (all) "
        "| RSS MB fetcher | downloaders Σ (max) | indexer | acker |"
    )
    rule = "|" + "---|" * (head.count("|") - 1)
    lines = [head, rule]
    for (link, workload), group in _group(results).items():
        for r in group:
            plain = plain_for(results, r) if r.method != "plain-copy" else None
            floor = floor_for(results, r)
            shape = _shape(r) if r.method == "pipeline" else "1 × 1" if r.method == "sequential" else f"– × {r.threads}"
            lines.append(
                f"| {link} | {workload} | {r.method} | {shape} | {r.dossiers} | {r.bytes / 1e6:.1f} | {r.wall_s:.1f} "
                f"| {r.dossiers_per_s:.1f} | {r.mb_per_s:.1f} "
                f"| {(f'{r.wall_s / plain.wall_s:.2f}×' if plain else '–')} "
                f"| {(f'{r.wall_s / floor.wall_s:.2f}×' if floor else '–')} | {sum(r.cpu_s.values()):.0f} "
                f"| {_rss(r, 'fetcher')} | {_rss(r, 'downloader', both=True)} "
                f"| {_rss(r, 'indexer')} | {_rss(r, 'acker')} |"
            )
    return "\n".join(lines)


def memory_table(memory: list[dict]) -> str:
    lines = ["| probe | input | wall s | peak RSS MB | limit MB | ok |", "|---|---|---|---|---|---|"]
    for p in memory:
        if "error" in p:
            lines.append(f"| {p['probe']} | – | – | – | – | error: {p['error'][:120]} |")
        elif p["probe"] == "fetcher":
            read = (
                f"{p['response_mb']:.0f} MB of JSON, all handed on ({p['dossiers_per_s']:.0f} dossiers/s)"
                if p["complete"]
                else f"PARTIAL: stopped after {p['handed_on']} handed on ({p['dossiers_per_s']:.0f} dossiers/s)"
            )
            lines.append(
                f"| fetcher `--once` | one sync response of {p['dossiers_in_response']} dossiers; {read} "
                f"| {p['wall_s']:.0f} | {p['peak_rss_mb']:.0f} | {p['limit_mb']} | {'yes' if p['ok'] else 'NO'} |"
            )
        else:
            lines.append(
                f"| downloader | one file of {p['file_bytes'] / 1e9:.2f} GB ({p['mb_per_s']:.0f} MB/s) "
                f"| {p['wall_s']:.0f} | {p['peak_rss_mb']:.0f} | {p['limit_mb']} | {'yes' if p['ok'] else 'NO'} |"
            )
    return "\n".join(lines)


def targets_table(checks: list[dict]) -> str:
    lines = ["| target | value | met | detail |", "|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c['target']} | {c['value']} | {'yes' if c['ok'] else 'NO'} | {c['detail']} |")
    return "\n".join(lines)


def stages_table(results: list[Result]) -> str:
    """Where a pipeline run's time went: start-up, and when each stage finished its last dossier."""
    lines = [
        "| link | workload | workers × threads | wall s | start-up s | after start-up s | fetcher done | first file "
        "| downloads done | indexed | acked "
        "| CPU s: fetcher | downloaders | indexer | acker | simulator | S3 | RabbitMQ | PostgreSQL "
        "| retries / dead letters |",
        "|" + "---|" * 20,
    ]
    for r in results:
        if r.method != "pipeline":
            continue
        s, c = r.stages_s, r.cpu_s
        startup = f"{r.startup_s:.1f}" if r.startup_s is not None else "–"
        after = f"{r.wall_s - r.startup_s:.1f}" if r.startup_s is not None else "–"
        lines.append(
            f"| {r.link} | {r.workload} | {_shape(r)} | {r.wall_s:.1f} | {startup} | {after} "
            f"| {get(s, 'fetcher_last')} | {get(s, 'downloader_first')} | {get(s, 'downloader_last')} "
            f"| {get(s, 'indexer_last')} | {get(s, 'acker_last')} | {get(c, 'fetcher')} | {get(c, 'downloader')} "
            f"| {get(c, 'indexer')} | {get(c, 'acker')} | {get(c, 'simulator')} | {get(c, 's3')} "
            f"| {get(c, 'rabbitmq')} | {get(c, 'postgresql')} "
            f"| {r.retries if r.retries is not None else '–'} "
            f"/ {r.dead_letters if r.dead_letters is not None else '–'} |"
        )
    return "\n".join(lines)


def _shape(r: Result) -> str:
    return f"{r.workers} × {r.threads // r.workers}"


def get(values: dict, key: str) -> str:
    return f"{values[key]:.1f}" if key in values else "–"


def write_json(
    path: Path,
    *,
    started: datetime,
    info: dict,
    settings: dict,
    results: list[Result],
    memory: list[dict],
    checks: list[dict],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "schema": 1,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.run", *sys.argv[1:]]),
        "machine": info,
        "settings": settings,
        "results": [r.as_dict() for r in results],
        "memory": memory,
        "targets": checks,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
