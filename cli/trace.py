"""`dongbo trace MAHOSO [--json]`: one dossier's journey, from what the database and the dead-letter queues
hold. Exit 0 when the dossier is known, 1 when nothing holds it, 2 when the database cannot be read."""

from __future__ import annotations

import argparse
import sys

from cli.common import one_line, operator_command
from shared.archive import COULD_NOT_RUN, GAPS, GOOD
from shared.errors import ConfigError


def add_parser(commands) -> None:
    parser = commands.add_parser("trace", help="show one dossier's journey through dongbo")
    parser.add_argument("mahoso", metavar="MAHOSO", help="the dossier's code")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--no-queues", action="store_true", help="do not look into the dead-letter queues")
    parser.set_defaults(handler=operator_command("trace", run_trace))


def run_trace(settings, args: argparse.Namespace) -> int:
    from cli.checking import broker, read_database, show
    from shared.archive.journey import add_dead_letters, dead_letters_of, load_journey

    journey = read_database(settings, lambda engine: load_journey(engine, args.mahoso))
    if not args.no_queues:
        try:
            with broker(settings, "trace") as session:
                publisher = session.publisher
                add_dead_letters(journey, dead_letters_of(session.channel, publisher, publisher.topology,
                                                          args.mahoso))
        except ConfigError as exc:
            # The database's part is still worth showing; the queues' part is said to be missing.
            print(f"dongbo trace: dead-letter queues not read: {exc}", file=sys.stderr)
        except Exception as exc:
            print(f"dongbo trace: dead-letter queues not read: {one_line(exc)}", file=sys.stderr)
            return COULD_NOT_RUN
    show(args, journey.as_dict(), lambda: render(journey))
    return GOOD if journey.found else GAPS


def _when(at) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def render(journey) -> str:
    if not journey.found:
        return f"dossier {journey.mahoso}: not known to dongbo (never returned by the one-stop system, or not yet)"
    lines = [f"dossier {journey.mahoso} of unit {journey.madonvi}: {journey.status or 'no sync state'}"
             f" (handed on {journey.publish_count}×, {journey.attempts} failed attempt(s))"]
    if journey.dossier:
        d = journey.dossier
        lines.append(f"  {d['tentochuccanhan']} — {d['tenthutuc']} ({d['mathutuc']}), received {d['ngaynhan'] or '-'}")
    lines.append("journey:")
    for event in journey.events:
        lines.append(f"  {_when(event.at)}  {event.stage:<14} {event.detail}")
    if journey.files:
        lines.append("files:")
        for f in journey.files:
            facts = f["pdf"]
            pdf = ("-" if facts is None else f"{facts['pages']} pages" if facts["is_pdf"] else "not a PDF")
            audit = "never audited" if f["audit"] is None else f"audit {f['audit']['result']} {_when(f['audit']['at'])}"
            lines.append(f"  {f['matailieu']}  {f['ten_file']}")
            lines.append(f"      {f['object_key']}  {f['size']} bytes  sha256 {f['sha256']}")
            lines.append(f"      stored {_when(f['stored_at'])}; {audit}; {pdf}")
    if journey.last_error:
        lines.append(f"last error: {journey.last_reason}: {journey.last_error}")
    for letter in journey.dead_letters:
        lines.append(f"held now in {letter['dlq']}: {letter['reason']} after {letter['attempts'] or '?'} attempt(s) "
                     f"by {letter['service'] or '?'}: {letter['error']}")
    return "\n".join(lines)
