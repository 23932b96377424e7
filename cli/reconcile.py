"""`dongbo reconcile --unit U --from D --to D [--json] [--requeue] [--rehash]`: compares one unit's window on
the one-stop system with the database and the bucket, and names every gap (see shared/archive/reconcile.py).

Exit 0: no gap; 1: gaps (also after `--requeue`, which only hands them to the pipeline: run the command
again once the pipeline has caught up); 2: could not run.
"""

from __future__ import annotations

import argparse
import sys

from cli.backfill import day
from cli.common import one_line, operator_command
from shared.archive import COULD_NOT_RUN, GAPS, GOOD
from shared.errors import DongboError


def add_parser(commands) -> None:
    parser = commands.add_parser("reconcile", help="compare a unit's date range with the one-stop system")
    parser.add_argument("--unit", required=True, metavar="MADONVI", help="the unit to check")
    parser.add_argument("--from", dest="start", required=True, type=day, metavar="DD/MM/YYYY",
                        help="first date received to include")
    parser.add_argument("--to", dest="end", required=True, type=day, metavar="DD/MM/YYYY",
                        help="last date received to include")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--requeue", action="store_true",
                        help="hand the dossiers with gaps to the pipeline again, as a backfill does")
    parser.add_argument("--rehash", action="store_true",
                        help="also read every object back and recompute its SHA-256 (slow)")
    parser.set_defaults(handler=operator_command("reconcile", run_reconcile))


def run_reconcile(settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from cli.checking import Progress, open_archive, show
    from shared.archive.reconcile import Report, reconcile
    from shared.onestop import OneStopClient

    engine, store = open_archive(settings, args)
    client = OneStopClient.from_settings(settings)
    report = Report(args.unit, args.start, args.end)
    try:
        with Progress(f"reconcile {args.unit}", unit="dossiers") as progress:
            listed = reconcile(client.fetch_dossiers(args.unit, args.start, args.end), engine, store, report,
                               rehash=args.rehash, on_dossier=progress.advance)
        if args.requeue and report.gaps:
            report.requeued = requeue(settings, engine, [listed[m] for m in report.dossiers_to_requeue()])
    except (DongboError, SQLAlchemyError) as exc:
        reason = f" ({exc.reason})" if isinstance(exc, DongboError) else ""
        print(f"dongbo reconcile: could not finish{reason}: {one_line(exc)}", file=sys.stderr)
        return COULD_NOT_RUN
    finally:
        client.close()
        engine.dispose()
    show(args, report.as_dict(), lambda: render(report))
    return GAPS if report.gaps else GOOD


def requeue(settings, engine, dossiers) -> list[str]:
    """Hands these dossiers to the download queue exactly as a poll or a backfill hands on a dossier
    (`shared.handoff.hand_on`: the same message, confirmed, then recorded in sync_state), whatever their
    sync state says."""
    from cli.checking import broker
    from shared.db import sync_state
    from shared.handoff import hand_on
    from shared.messages import DossierFetched

    messages = [DossierFetched.of(dossier) for dossier in dossiers]
    with engine.begin() as connection:
        states = sync_state.load(connection, [m.mahoso for m in messages])
    with broker(settings, "reconcile") as session:
        for madonvi in dict.fromkeys(m.madonvi for m in messages):
            hand_on(session.publisher, engine, session.publisher.topology, madonvi,
                    [m for m in messages if m.madonvi == madonvi], states)
    return [m.mahoso for m in messages]


def render(report) -> str:
    counts = report.counts()
    window = f"{report.start:%d/%m/%Y}–{report.end:%d/%m/%Y}"
    lines = [f"unit {report.madonvi} {window}: {report.listed} dossiers listed by the one-stop system, "
             f"{report.in_archive} in the archive, {report.files_checked} files checked"
             + (f", {report.malformed} malformed" if report.malformed else "")]
    if not report.gaps:
        lines.append("no gaps")
    else:
        lines.append(f"{len(report.gaps)} gaps: " + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n))
        for gap in report.gaps:
            where = f" {gap.object_key}" if gap.object_key else ""
            lines.append(f"  {gap.kind:<16} {gap.mahoso}{where}: {gap.detail}")
    if report.requeued:
        lines.append(f"handed {len(report.requeued)} dossiers to the pipeline again; run reconcile again once it "
                     "has caught up")
    return "\n".join(lines)
