"""`dongbo audit`: the fixity audit (shared/archive/fixity.py), once or every `--every` period.

Once: exit 0 when every file read matched and nothing is untracked, 1 when something changed, is missing,
unreadable or untracked, 2 when it could not run. With `--every 7d` it is a long-running process (Procfile,
compose): it audits, sleeps, audits again, serves its metrics on DONGBO_METRICS_PORT, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from datetime import timedelta

from cli.backfill import day
from cli.common import one_line, operator_command
from shared.archive import COULD_NOT_RUN, GAPS, GOOD

PERIOD = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def period(text: str) -> timedelta:
    match = PERIOD.fullmatch(text.strip().lower())
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a period such as 7d, 12h, 30m")
    return timedelta(seconds=float(match[1]) * SECONDS[match[2]])


def percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 100")
    return value


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of MB/s") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value * 1e6


def add_parser(commands) -> None:
    parser = commands.add_parser("audit", help="read stored files back and check their SHA-256 (resumable)")
    parser.add_argument("--unit", metavar="MADONVI", help="only this unit's files")
    parser.add_argument("--since", type=day, metavar="DD/MM/YYYY", help="only files stored on or after this day")
    parser.add_argument("--sample", type=percent, default=100.0, metavar="PERCENT",
                        help="read this share of the due files, most overdue first (default 100)")
    parser.add_argument("--max-rate", type=rate, metavar="MB/s", help="read at most this many MB a second")
    parser.add_argument("--recheck-after", type=period, default=timedelta(days=30), metavar="PERIOD",
                        help="a file verified more recently than this is not read again (default 30d)")
    parser.add_argument("--no-untracked", action="store_true", help="skip listing the bucket for untracked objects")
    parser.add_argument("--every", type=period, metavar="PERIOD",
                        help="keep running: audit, then wait this long (e.g. 7d), and again")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(handler=operator_command("audit", run_audit_command))


def run_audit_command(settings, args: argparse.Namespace) -> int:
    from cli.checking import open_database, open_store
    from shared.archive.fixity import AuditOptions

    engine = open_database(settings)
    # Scheduled, it starts with the services and waits for the bucket they create (as they wait for the
    # store), instead of exiting and taking the others down with it under honcho or a restart loop.
    store = _when_ready(lambda: open_store(settings)) if args.every else open_store(settings)
    options = AuditOptions(madonvi=args.unit, since=args.since, sample=args.sample, max_rate=args.max_rate,
                           recheck_after=args.recheck_after, untracked=not args.no_untracked)
    try:
        if args.every:
            return _every(settings, engine, store, options, args)
        return _once(engine, store, options, args)
    finally:
        engine.dispose()


def _when_ready(open_store):
    """`open_store()` once the bucket exists, with the services' own start-up wait (one line per try)."""
    from shared.errors import ConfigError, StorageUnavailable
    from shared.service import wait_until_ready

    def attempt():
        try:
            return open_store()
        except ConfigError as exc:  # not there yet: the downloaders create it when they start
            raise StorageUnavailable(str(exc)) from None

    return wait_until_ready(attempt, "the bucket")


def _once(engine, store, options, args) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from cli.checking import Progress, show
    from shared.archive.fixity import run_audit
    from shared.errors import DongboError

    try:
        with Progress("audit", unit="bytes") as progress:
            report = run_audit(engine, store, options, progress=lambda n, _key: progress.advance(n),
                               on_due=lambda _files, size: progress.set_total(size))
    except (DongboError, SQLAlchemyError) as exc:
        print(f"dongbo audit: could not finish: {one_line(exc)}; what was verified is kept", file=sys.stderr)
        return COULD_NOT_RUN
    show(args, report.as_dict(), lambda: render(report))
    return GAPS if report.gaps else GOOD


def _every(settings, engine, store, options, args) -> int:
    import logging

    from shared import observability
    from shared.archive.fixity import run_audit
    from shared.logs import setup_logging

    setup_logging(settings.log_level, settings.log_json)
    log = logging.getLogger("dongbo.audit")
    stopping = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
    observability.serve(settings.metrics_port, lambda: (True, "ok"))
    while not stopping.is_set():
        try:
            report = run_audit(engine, store, options, stopping=stopping)
            log.info("audit run %d: %s", report.run_id, render(report).splitlines()[0])
        except Exception as exc:  # the schedule goes on: the next run retries what this one missed
            log.error("audit run failed: %s", one_line(exc))
        stopping.wait(args.every.total_seconds())
    return GOOD


def render(report) -> str:
    c = report.counts
    mb = report.bytes_read / 1e6
    speed = f", {mb / report.seconds:.2f} MB/s" if report.seconds else ""
    lines = [f"audit run {report.run_id}: {report.checked} of {report.due} due files read ({mb:.1f} MB in "
             f"{report.seconds:.1f}s{speed}): {c['ok']} ok, {c['changed']} changed, {c['missing']} missing, "
             f"{c['unreadable']} unreadable; {c['untracked']} untracked objects"]
    for problem in report.problems:
        lines.append(f"  {problem['result']:<10} {problem['object_key']}: {problem['detail']}")
    return "\n".join(lines)
