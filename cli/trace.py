"""`dongbo trace MAHOSO [--json]`: one dossier's journey, from what the database and the dead-letter queues
hold, with its versions and corrections. Exit 0 when the dossier is known, 1 when nothing holds it, 2 when
the database cannot be read; 141 (128 + SIGPIPE, as a shell reports it) when the reader of the output went
away early (`dongbo trace X | head`) — quietly, without a traceback."""

from __future__ import annotations

import argparse
import json
import sys

from cli.common import one_line, operator_command, silence_stdout
from shared.archive import COULD_NOT_RUN, GAPS, GOOD
from shared.errors import ConfigError


def add_parser(commands) -> None:
    parser = commands.add_parser("trace", help="show one dossier's journey through dongbo")
    parser.add_argument("mahoso", metavar="MAHOSO", help="the dossier's code")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--no-queues", action="store_true", help="do not look into the dead-letter queues")
    parser.set_defaults(handler=operator_command("trace", run_trace))


def run_trace(settings, args: argparse.Namespace) -> int:
    from cli.checking import broker, read_database
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
    text = json.dumps(journey.as_dict(), ensure_ascii=False, indent=2) if args.json else render(journey)
    if not print_to_reader(text):
        return CLOSED_PIPE
    return GOOD if journey.found else GAPS


CLOSED_PIPE = 141


def print_to_reader(text: str) -> bool:
    """Prints `text` and flushes; False when the reader closed the pipe (`| head`, `| less` quit early).

    Python ignores SIGPIPE and raises BrokenPipeError instead, once here and once more when the interpreter
    flushes standard output at exit; pointing the descriptor at /dev/null keeps that second one silent."""
    try:
        print(text)
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        silence_stdout()
        return False


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
    lines += _versions(journey)
    if journey.last_error:
        lines.append(f"last error: {journey.last_reason}: {journey.last_error}")
    for letter in journey.dead_letters:
        lines.append(f"held now in {letter['dlq']}: {letter['reason']} after {letter['attempts'] or '?'} attempt(s) "
                     f"by {letter['service'] or '?'}: {letter['error']}")
    return "\n".join(lines)


def _versions(journey) -> list[str]:
    if not journey.versions:
        return []
    lines = [f"versions ({len(journey.versions)}):"]
    for v in journey.versions:
        mark = " (current)" if v["current"] else ""
        lines.append(f"  #{v['number']} {v['version_hash'][:12]}{mark}: seen {_when(v['fetched_at'])}, "
                     f"recorded {_when(v['recorded_at'])}, {len(v['files'])} file(s)")
        for c in v["corrections"]:
            lines.append(f"      after correction {c['correction_id'][:12]}: {c['action']} {c['matailieu']} "
                         f"by {c['requested_by'] or '?'}, applied {_when(c['finished_at'])}")
        for f in v["files"]:
            if f.get("missing"):
                lines.append(f"      {f['object_key']}  (no row in tai_lieu)")
                continue
            where = "current" if f["current"] else \
                f"superseded {_when(f['superseded_at'])}: {f['superseded_reason'] or '-'}"
            lines.append(f"      {f['matailieu']}  {f['ten_file']}  {f['size']} bytes  {f['object_key']}  [{where}]")
    unplaced = [c for c in journey.corrections if c["version"] is None]
    if unplaced:
        lines.append("corrections that led to no version (yet):")
        for c in unplaced:
            lines.append(f"  {c['correction_id'][:12]} {c['action']} {c['matailieu']} by {c['requested_by'] or '?'}"
                         f" {_when(c['requested_at'])}: {c['status']}: {c['outcome'] or '-'}")
    return lines
