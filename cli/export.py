"""`dongbo export --unit U --from D --to D OUT_DIR`: one BagIt bag per dossier of the window, for hand-over
to an archive (shared/archive/bag_export.py). Exit 0 when every dossier was exported (or was already),
1 when one or more failed (named), 2 when it could not run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.backfill import day
from cli.common import one_line, operator_command
from shared.archive import COULD_NOT_RUN, GAPS, GOOD


def add_parser(commands) -> None:
    parser = commands.add_parser("export", help="write BagIt bags of a unit's dossiers for hand-over")
    parser.add_argument("--unit", required=True, metavar="MADONVI")
    parser.add_argument("--from", dest="start", required=True, type=day, metavar="DD/MM/YYYY",
                        help="first date received to include")
    parser.add_argument("--to", dest="end", required=True, type=day, metavar="DD/MM/YYYY",
                        help="last date received to include")
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="where the bags go (one folder each)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.set_defaults(handler=operator_command("export", run_export))


def run_export(settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from cli.checking import Progress, open_archive
    from shared.archive.bag_export import dossiers_in, export_window

    engine, store = open_archive(settings, args)
    try:
        total = len(dossiers_in(engine, args.unit, args.start, args.end))
        with Progress(f"export {args.unit}", total=total, unit="dossiers") as progress:
            report = export_window(engine, store, args.unit, args.start, args.end, args.out_dir,
                                   on_dossier=lambda _m: progress.advance())
    except (SQLAlchemyError, OSError) as exc:
        print(f"dongbo export: could not run: {one_line(exc)}", file=sys.stderr)
        return COULD_NOT_RUN
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(report.__dict__, ensure_ascii=False, indent=2))
    else:
        print(f"exported {len(report.bags)} bags ({report.files} files, {report.bytes / 1e6:.1f} MB) to "
              f"{args.out_dir}; {len(report.skipped)} already there; {len(report.failed)} failed")
        for mahoso, error in report.failed.items():
            print(f"  failed {mahoso}: {error}")
    return GAPS if report.failed else GOOD
