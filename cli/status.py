"""`dongbo status`: how far each unit's dossiers have come, how full the queues are, how each service is doing.

The numbers per unit come from `sync_state` (where each dossier is in the pipeline) and from `ho_so` and
`tai_lieu` (what the archive holds). Each stage counts the dossiers that got at least that far: `stored`
includes the indexed and synced ones. A part that cannot be read (the broker or database down) is
reported as an error line and the rest is still shown; the exit code is then 1.

It tells only what is true now: a service instance that has stopped (its process is gone, where status can
see that) is left out of the table and counted below it, one silent for long is marked stale, and an error
is shown only while it is current (the instance is running and the error is recent or nothing has worked
since). A database that is missing or cannot be reached gets the advice that fits, and status never
creates one (opening a SQLite path that does not exist would leave an empty file behind).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import overload

from cli.common import one_line, operator_command, redact_url, table
from shared.logs import redact

STALE_AFTER = 600.0  # seconds without progress after which an instance is flagged
CURRENT_ERROR = 600.0  # an error younger than this is shown even if the instance made progress since
STAGES = ("seen", "queued", "stored", "indexed", "synced", "failed")
IN_FLIGHT = ("queued", "stored", "indexed")  # not synced yet, and not given up on either


def add_parser(commands) -> None:
    parser = commands.add_parser("status", help="dossiers per unit, queue depths, service progress")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--all", action="store_true", help="list stopped service instances too")
    parser.add_argument("--follow", action="store_true",
                        help="a live progress line (seen / stored / indexed / synced per unit, rate, ETA)")
    parser.add_argument("--expect", type=int, metavar="N",
                        help="with --follow: stop, exit 0, once N dossiers are synced")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="with --follow: give up (exit 1) after this long")
    parser.set_defaults(handler=operator_command("status", show_status))


def show_status(settings, args: argparse.Namespace) -> int:
    if getattr(args, "follow", False):
        return follow(settings, args.expect, args.timeout)
    now = datetime.now(UTC)
    report: dict = {"generated_at": now.isoformat(timespec="seconds"), "units": {}, "queues": {}, "services": [],
                    "last_poll_at": None, "last_poll_seconds_ago": None, "totals": {}, "errors": []}
    where = redact_url(settings.database_url.get_secret_value())
    if problem := database_problem(settings):
        report["errors"].append(f"database {where}: {problem}")
    else:
        try:
            read_database(settings, now, report)
        except Exception as exc:  # reported as a line; the queues are still worth showing
            report["errors"].append(f"database {where}: {one_line(exc)}{database_advice(settings, exc)}")
    try:
        report["queues"] = queue_depths(settings)
    except Exception as exc:
        report["errors"].append(f"rabbitmq {redact_url(settings.amqp_url.get_secret_value())}: {one_line(exc)}")
    report["totals"] = totals(report)
    report["stopped_services"] = sum(1 for s in report["services"] if s["state"] == "stopped")
    if args.json:
        print(redact(json.dumps(report, indent=2, ensure_ascii=False)))
    else:
        print(redact(render(report, show_stopped=getattr(args, "all", False))))
    return 1 if report["errors"] else 0


# -- the live line ---------------------------------------------------------------------------------------


def follow(settings, expect: int | None, timeout: float | None, every: float = 0.5) -> int:
    """Redraws one line with each unit's progress until `expect` dossiers are synced (or forever).

    On a terminal the line is redrawn in place; elsewhere (a log, a test) a line is printed every few
    seconds, and whenever the numbers change the last time before the end."""
    import sys
    import time

    from shared.db.engine import make_engine

    if problem := database_problem(settings):
        print(f"dongbo status: database: {problem}", file=sys.stderr)
        return 1
    engine = make_engine(settings.database_url.get_secret_value())
    tty = sys.stdout.isatty()
    started = time.monotonic()
    first_synced: int | None = None
    last_printed, last_line = 0.0, ""
    try:
        while True:
            try:
                units = progress_counts(engine, settings.units)
            except Exception as exc:  # the schema not there yet, a locked file: try again on the next tick
                units, note = {}, one_line(exc)
            else:
                note = ""
            synced = sum(u["synced"] for u in units.values())
            if first_synced is None and units:
                first_synced = synced  # what an earlier run synced does not count towards the rate
            elapsed = time.monotonic() - started
            line = progress_line(units, synced - (first_synced or 0), elapsed, expect) + (f"  ({note})" if note
                                                                                        else "")
            done = expect is not None and synced >= expect
            if tty:
                print("\r\033[K" + line[:_width() - 1], end="", flush=True)
            elif done or (line != last_line and time.monotonic() - last_printed >= 5):
                print(line, flush=True)
                last_printed, last_line = time.monotonic(), line
            if done:
                if tty:
                    print()
                return 0
            if timeout is not None and elapsed > timeout:
                print(("\n" if tty else "") + f"dongbo status: not all {expect} dossiers synced after "
                      f"{timeout:.0f} s", flush=True)
                return 1
            time.sleep(every)
    except KeyboardInterrupt:
        if tty:
            print()
        return 130
    finally:
        engine.dispose()


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((160, 20)).columns


def progress_counts(engine, configured: list[str]) -> dict[str, dict[str, int]]:
    """Per unit: dossiers seen, and how many got at least as far as stored, indexed, synced; and failed."""
    from sqlalchemy import func, select
    from sqlmodel import SQLModel

    from shared.db.models import SyncState

    state = SQLModel.metadata.tables[SyncState.__tablename__]
    with engine.connect() as connection:
        rows = connection.execute(select(state.c.madonvi, state.c.status, func.count())
                                  .group_by(state.c.madonvi, state.c.status)).all()
    units = {madonvi: {"seen": 0, "stored": 0, "indexed": 0, "synced": 0, "failed": 0} for madonvi in configured}
    for madonvi, status, count in rows:
        numbers = units.setdefault(madonvi, {"seen": 0, "stored": 0, "indexed": 0, "synced": 0, "failed": 0})
        numbers["seen"] += count
        for name, reached in (("stored", ("stored", "indexed", "synced")), ("indexed", ("indexed", "synced")),
                              ("synced", ("synced",)), ("failed", ("failed",))):
            if status in reached:
                numbers[name] += count
    return dict(sorted(units.items()))


def progress_line(units: dict[str, dict[str, int]], synced_now: int, elapsed: float, expect: int | None) -> str:
    """`seen 186  stored 150  indexed 140  synced 120/186  12.3/s  ETA 5s  |  17.H55 40/62 ...`"""
    total = {name: sum(u[name] for u in units.values()) for name in ("seen", "stored", "indexed", "synced", "failed")}
    goal = expect if expect is not None else total["seen"]
    rate = synced_now / elapsed if elapsed > 0 else 0.0
    remaining = max(0, goal - total["synced"])
    eta = "-" if rate <= 0 or not remaining else age(remaining / rate)
    parts = [f"seen {total['seen']}", f"stored {total['stored']}", f"indexed {total['indexed']}",
             f"synced {total['synced']}/{goal}", f"{rate:.1f}/s", f"ETA {eta}"]
    if total["failed"]:
        parts.append(f"failed {total['failed']}")
    # Per unit, the code's distinctive tail (000.00.17.H55 -> 17.H55): synced of seen.
    per_unit = [f"{unit.split('.', 2)[-1]} {n['synced']}/{n['seen']}" for unit, n in units.items()]
    return "  ".join(parts) + ("  |  " + "  ".join(per_unit) if per_unit else "")


# -- where the database is -----------------------------------------------------------------------------

UNSET_HINT = ("DONGBO_DATABASE_URL is not set (nor in ./.env), so the default sqlite:///dongbo.db of this "
              "directory is used; for the demo's database run `. .demo/env` first")


def database_problem(settings) -> str | None:
    """Why there is no database to open, with what to do; None when connecting is worth trying.

    Only a SQLite file can be seen missing without connecting, and connecting would create it empty."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.database_url.get_secret_value())
    except ArgumentError:
        return None  # make_engine says what is wrong with it
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database).resolve()
    if path.exists():
        return None
    if "database_url" not in settings.model_fields_set:
        return f"no database file {path}. {UNSET_HINT}"
    return f"no database file {path}; to create an empty one there: dongbo db upgrade"


def database_advice(settings, exc: BaseException) -> str:
    """What to do about a database that did not answer, from the error's text (the drivers' own words)."""
    text = str(exc).lower()
    unset = "" if "database_url" in settings.model_fields_set else f" ({UNSET_HINT})"
    if "does not exist" in text and "database" in text:
        return "; create the database (createdb NAME), then: dongbo db upgrade" + unset
    if "connection refused" in text or "could not connect" in text or "timeout" in text or "timed out" in text:
        return "; is the database server running there, and is DONGBO_DATABASE_URL right?" + unset
    if "password authentication failed" in text or "authentication" in text:
        return "; check the user and password in DONGBO_DATABASE_URL"
    return unset


# -- reading ----------------------------------------------------------------------------------------


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: datetime | None) -> datetime | None: ...
def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite hands back naive UTC datetimes
        return value.replace(tzinfo=UTC)
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _aware(value).isoformat(timespec="seconds")


def read_database(settings, now: datetime, report: dict) -> None:
    from sqlalchemy import func, select
    from sqlmodel import SQLModel

    from shared.archive.fixity import audit_status
    from shared.db.document_types import unknown_document_types
    from shared.db.engine import current_revision, make_engine, schema_problem
    from shared.db.models import HoSo, ServiceStatus, SyncState, TaiLieu

    engine = make_engine(settings.database_url.get_secret_value())
    try:
        if problem := schema_problem(current_revision(engine)):
            raise RuntimeError(problem)
        tables = SQLModel.metadata.tables
        state, ho_so, tai_lieu, status = (tables[model.__tablename__]
                                          for model in (SyncState, HoSo, TaiLieu, ServiceStatus))
        with engine.connect() as connection:
            by_status = connection.execute(
                select(state.c.madonvi, state.c.status, func.count(), func.min(state.c.first_seen_at))
                .group_by(state.c.madonvi, state.c.status)).all()
            archived = connection.execute(select(ho_so.c.madonvi, func.count()).group_by(ho_so.c.madonvi)).all()
            files = connection.execute(
                select(ho_so.c.madonvi, func.count(tai_lieu.c.id), func.coalesce(func.sum(tai_lieu.c.size), 0))
                .select_from(tai_lieu.join(ho_so, tai_lieu.c.ho_so_id == ho_so.c.id))
                .where(tai_lieu.c.superseded_at.is_(None))  # a file replaced by a newer version is history
                .group_by(ho_so.c.madonvi)).all()
            instances = (
                connection.execute(select(status).order_by(status.c.service, status.c.instance)).mappings().all()
            )
        report["audit"] = audit_status(engine)
        # Files whose type the catalog does not know: stored as usual, listed so the catalog can be fixed.
        report["unknown_document_types"] = dict(unknown_document_types(engine))
    finally:
        engine.dispose()
    report["units"] = unit_numbers(settings.units, by_status, archived, files, now)
    report["services"] = [service_entry(row, now) for row in instances]
    polls: list[datetime] = [
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
            seen_at: datetime = _aware(first_seen)
            oldest[madonvi] = min(oldest.get(madonvi, seen_at), seen_at)
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
    from shared.service import STOPPED_NOTE

    exited = row["last_error"] == STOPPED_NOTE  # the instance recorded its own clean exit
    stopped = exited or process_gone(row["instance"], row["service"])
    stale = idle is None or idle > STALE_AFTER
    error_at = _aware(row["last_error_at"])
    progress_at = _aware(row["last_progress_at"])
    # An error is current while its instance runs and it is either recent or nothing has worked since.
    error_current = bool(row["last_error"]) and not stopped and error_at is not None and (
        (now - error_at).total_seconds() <= CURRENT_ERROR or progress_at is None or error_at >= progress_at)
    return {
        "instance": row["instance"],
        "service": row["service"],
        "state": "stopped" if stopped else "stale" if stale else "running",
        "started_at": _iso(row["started_at"]),
        "last_progress_at": _iso(row["last_progress_at"]),
        "seconds_since_progress": None if idle is None else round(idle, 1),
        "stale": stale or stopped,
        "last_error": redact(row["last_error"]) if row["last_error"] and not exited else None,
        "last_error_at": None if exited else _iso(row["last_error_at"]),
        "stopped_at": _iso(row["last_error_at"]) if exited else None,
        "error_current": error_current,
    }


def process_gone(instance: str, service: str) -> bool:
    """Whether the process behind `service@host:pid` has certainly ended. Only a process of this host can
    be looked at; one elsewhere (another machine or container) is judged by its age alone."""
    _name, _, where = instance.partition("@")
    host, _, pid_text = where.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        pass
    # The PID may have been reused by an unrelated process since.
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return service not in command and "dongbo" not in command


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
    result["stale_services"] = sum(1 for s in report["services"] if s["state"] == "stale")
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


def render(report: dict, show_stopped: bool = False) -> str:
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
    shown = [s for s in report["services"] if show_stopped or s["state"] != "stopped"]
    if shown:
        rows = [
            [
                s["service"],
                s["instance"],
                age(s["seconds_since_progress"]) + " ago" + ("" if s["state"] == "running" else f" ({s['state']})"),
                _error_line(s),
            ]
            for s in shown
        ]
        parts.append(table(["SERVICE", "INSTANCE", "LAST PROGRESS", "CURRENT ERROR"], rows))
    if hidden := len(report["services"]) - len(shown):
        parts.append(f"{hidden} stopped service instance{'s' if hidden > 1 else ''} not shown (dongbo status --all)")
    if audit := report.get("audit"):
        parts.append(audit_line(audit))
    if unknown := report.get("unknown_document_types"):
        parts.append("document types the catalog does not know (files): "
                     + ", ".join(f"{code} ({count})" for code, count in unknown.items()))
    poll = report["last_poll_at"]
    parts.append(
        f"last successful poll: {poll} ({age(report['last_poll_seconds_ago'])} ago)"
        if poll
        else "last successful poll: none recorded"
    )
    return "\n\n".join(parts)


def audit_line(audit: dict) -> str:
    """Fixity in one paragraph: the last audit run and what is due (`dongbo audit`)."""
    run = audit["last_run"]
    results = audit["last_results"]
    found = ", ".join(f"{n} {result}" for result, n in results.items() if n and result != "ok")
    line = (f"fixity: {audit['verified_recently']} of {audit['files']} files verified recently, {audit['due']} due"
            + (f"; last results: {found}" if found else ""))
    if run is None:
        return line + "\nlast audit: none finished (dongbo audit)"
    return line + (f"\nlast audit: finished {run['finished_at']}, {run['checked']} checked, {run['ok']} ok, "
                   f"{run['changed']} changed, {run['missing']} missing, {run['untracked']} untracked")


def _error_line(service: dict) -> str:
    if not service["error_current"]:
        return "-"
    text = " ".join(service["last_error"].split())
    return f"{service['last_error_at']}: {text[:100]}{'...' if len(text) > 100 else ''}"
