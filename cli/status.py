"""`dongbo status`: how far each unit's dossiers have come, how full the queues are, how each service is doing.

The numbers per unit come from `sync_state` (where each dossier is in the pipeline) and from `ho_so` and
`tai_lieu` (what the archive holds). Each stage counts the dossiers that got at least that far: `stored`
includes the indexed and synced ones. A part that cannot be read (the broker or database down) is
reported as an error line and the rest is still shown; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from cli.common import one_line, operator_command, redact_url, table
from shared.logs import redact

STALE_AFTER = 600.0  # seconds without progress after which an instance is flagged
STAGES = ("seen", "queued", "stored", "indexed", "synced", "failed")
IN_FLIGHT = ("queued", "stored", "indexed")  # not synced yet, and not given up on either


def add_parser(commands) -> None:
    parser = commands.add_parser("status", help="dossiers per unit, queue depths, service progress")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(handler=operator_command("status", show_status))


def show_status(settings, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    report: dict = {"generated_at": now.isoformat(timespec="seconds"), "units": {}, "queues": {}, "services": [],
                    "last_poll_at": None, "last_poll_seconds_ago": None, "totals": {}, "errors": []}
    try:
        read_database(settings, now, report)
    except Exception as exc:  # reported as a line; the queues are still worth showing
        report["errors"].append(f"database {redact_url(settings.database_url.get_secret_value())}: {one_line(exc)}")
    try:
        report["queues"] = queue_depths(settings)
    except Exception as exc:
        report["errors"].append(f"rabbitmq {redact_url(settings.amqp_url.get_secret_value())}: {one_line(exc)}")
    report["totals"] = totals(report)
    if args.json:
        print(redact(json.dumps(report, indent=2, ensure_ascii=False)))
    else:
        print(redact(render(report)))
    return 1 if report["errors"] else 0


# -- reading ----------------------------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite hands back naive UTC datetimes
        return value.replace(tzinfo=UTC)
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _aware(value).isoformat(timespec="seconds")


def read_database(settings, now: datetime, report: dict) -> None:
    from sqlalchemy import func, select

    from shared.db.engine import current_revision, make_engine, schema_problem
    from shared.db.models import HoSo, ServiceStatus, SyncState, TaiLieu

    engine = make_engine(settings.database_url.get_secret_value())
    try:
        if problem := schema_problem(current_revision(engine)):
            raise RuntimeError(problem)
        state, ho_so, tai_lieu, status = (SyncState.__table__, HoSo.__table__, TaiLieu.__table__,
                                          ServiceStatus.__table__)
        with engine.connect() as connection:
            by_status = connection.execute(
                select(state.c.madonvi, state.c.status, func.count(), func.min(state.c.first_seen_at))
                .group_by(state.c.madonvi, state.c.status)).all()
            archived = connection.execute(select(ho_so.c.madonvi, func.count()).group_by(ho_so.c.madonvi)).all()
            files = connection.execute(
                select(ho_so.c.madonvi, func.count(tai_lieu.c.id), func.coalesce(func.sum(tai_lieu.c.size), 0))
                .select_from(tai_lieu.join(ho_so, tai_lieu.c.ho_so_id == ho_so.c.id))
                .group_by(ho_so.c.madonvi)).all()
            instances = (
                connection.execute(select(status).order_by(status.c.service, status.c.instance)).mappings().all()
            )
    finally:
        engine.dispose()
    report["units"] = unit_numbers(settings.units, by_status, archived, files, now)
    report["services"] = [service_entry(row, now) for row in instances]
    polls = [
        _aware(row["last_progress_at"]) for row in instances if row["service"] == "fetcher" and row["last_progress_at"]
    ]
    if polls:
        report["last_poll_at"] = _iso(max(polls))
        report["last_poll_seconds_ago"] = round((now - max(polls)).total_seconds(), 1)


def unit_numbers(configured, by_status, archived, files, now: datetime) -> dict:
    units: dict[str, dict] = {}

    def entry(madonvi: str) -> dict:
        return units.setdefault(
            madonvi,
            {**{name: 0 for name in STAGES}, "oldest_unsynced_seconds": None, "archived": 0, "files": 0, "bytes": 0},
        )

    for madonvi in configured:
        entry(madonvi)
    oldest: dict[str, datetime] = {}
    for madonvi, status, count, first_seen in by_status:
        numbers = entry(madonvi)
        numbers["seen"] += count
        # Each stage counts the dossiers that got at least that far.
        for name, reached in (
            ("queued", ("queued",)),
            ("stored", ("stored", "indexed", "synced")),
            ("indexed", ("indexed", "synced")),
            ("synced", ("synced",)),
            ("failed", ("failed",)),
        ):
            if status in reached:
                numbers[name] += count
        if status in IN_FLIGHT and first_seen is not None:
            first_seen = _aware(first_seen)
            oldest[madonvi] = min(oldest.get(madonvi, first_seen), first_seen)
    for madonvi, first_seen in oldest.items():
        units[madonvi]["oldest_unsynced_seconds"] = round((now - first_seen).total_seconds(), 1)
    for madonvi, count in archived:
        entry(madonvi)["archived"] = count
    for madonvi, count, size in files:
        entry(madonvi).update(files=count, bytes=int(size))
    return dict(sorted(units.items()))


def service_entry(row, now: datetime) -> dict:
    last = _aware(row["last_progress_at"]) or _aware(row["started_at"])
    idle = (now - last).total_seconds() if last else None
    return {
        "instance": row["instance"],
        "service": row["service"],
        "started_at": _iso(row["started_at"]),
        "last_progress_at": _iso(row["last_progress_at"]),
        "seconds_since_progress": None if idle is None else round(idle, 1),
        "stale": idle is None or idle > STALE_AFTER,
        "last_error": redact(row["last_error"]) if row["last_error"] else None,
        "last_error_at": _iso(row["last_error_at"]),
    }


def queue_depths(settings) -> dict[str, int | None]:
    """Ready messages of every queue; None for a queue that does not exist (nothing declared it yet)."""
    import pika.exceptions

    from shared.broker.connection import connect
    from shared.broker.topology import Topology

    connection = connect(settings.amqp_url.get_secret_value(), "status", settings.heartbeat)
    depths: dict[str, int | None] = {}
    try:
        channel = connection.channel()
        for name in _in_pipeline_order(Topology.from_settings(settings)):
            try:
                depths[name] = channel.queue_declare(name, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:  # 404: the broker closes the channel
                depths[name] = None
                channel = connection.channel()
    finally:
        if connection.is_open:
            connection.close()
    return depths


def _in_pipeline_order(topology) -> list[str]:
    """Per stage: the work queue, its retry queues from the shortest delay, its dead-letter queue."""
    from shared.broker.topology import WORK_QUEUES

    names = []
    for stage in WORK_QUEUES:
        retries = [topology.retry_queue(stage, n) for n in range(1, len(topology.retry_delays) + 1)]
        names += [topology.queue(stage), *dict.fromkeys(retries), topology.dead_letter_queue(stage)]
    return names


def totals(report: dict) -> dict:
    result = {name: sum(u[name] for u in report["units"].values()) for name in (*STAGES, "archived", "files", "bytes")}
    ages = [u["oldest_unsynced_seconds"] for u in report["units"].values() if u["oldest_unsynced_seconds"] is not None]
    result["oldest_unsynced_seconds"] = max(ages) if ages else None
    depths = report["queues"]
    result["queued_messages"] = sum(d or 0 for name, d in depths.items() if not name.endswith(".dlq"))
    result["dead_letters"] = sum(d or 0 for name, d in depths.items() if name.endswith(".dlq"))
    result["stale_services"] = sum(1 for s in report["services"] if s["stale"])
    return result


# -- the human table ----------------------------------------------------------------------------------


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def render(report: dict) -> str:
    parts = [f"error: {line}" for line in report["errors"]]
    columns = ["seen", "stored", "indexed", "synced", "failed"]
    rows = [
        [unit] + [n[c] for c in columns] + [age(n["oldest_unsynced_seconds"]), n["files"]]
        for unit, n in report["units"].items()
    ]
    t = report["totals"]
    rows.append(["total"] + [t[c] for c in columns] + [age(t["oldest_unsynced_seconds"]), t["files"]])
    parts.append(
        table(
            ["UNIT", "SEEN", "STORED", "INDEXED", "SYNCED", "FAILED", "OLDEST UNSYNCED", "FILES"],
            rows,
            right=set(range(1, 8)),
        )
    )
    if report["queues"]:
        parts.append(
            table(
                ["QUEUE", "MESSAGES"],
                [[name, "missing" if d is None else d] for name, d in report["queues"].items()],
                right={1},
            )
        )
    if report["services"]:
        rows = [
            [
                s["service"],
                s["instance"],
                age(s["seconds_since_progress"]) + " ago" + (" (stale)" if s["stale"] else ""),
                _error_line(s),
            ]
            for s in report["services"]
        ]
        parts.append(table(["SERVICE", "INSTANCE", "LAST PROGRESS", "LAST ERROR"], rows))
    poll = report["last_poll_at"]
    parts.append(
        f"last successful poll: {poll} ({age(report['last_poll_seconds_ago'])} ago)"
        if poll
        else "last successful poll: none recorded"
    )
    return "\n\n".join(parts)


def _error_line(service: dict) -> str:
    if not service["last_error"]:
        return "-"
    text = " ".join(service["last_error"].split())
    return f"{service['last_error_at']}: {text[:100]}{'...' if len(text) > 100 else ''}"
