"""`dongbo`: one command, a subcommand per service and per operator task.

Imports happen inside each subcommand, so `dongbo status` does not load what `dongbo downloader` needs.
"""

from __future__ import annotations

import argparse
import sys

SERVICES = ("fetcher", "downloader", "indexer", "acker", "inspector", "corrections")


def _run_service(name: str, args: argparse.Namespace) -> int:
    from shared.service import main

    if name == "fetcher":
        from services.fetcher.service import Fetcher

        return main("fetcher", lambda settings: Fetcher(settings, once=args.once))
    module = __import__(f"services.{name}.service", fromlist=["build"])
    return main(name, module.build)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dongbo",
        description="Moves finished dossiers and their files from the one-stop system into the digitization archive.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetcher = commands.add_parser("fetcher", help="poll the one-stop system and queue new dossiers")
    fetcher.add_argument("--once", action="store_true", help="poll every unit once, then exit")
    commands.add_parser("downloader", help="store attachments in the bucket (run several)")
    commands.add_parser("indexer", help="write dossiers into the digitization database")
    commands.add_parser("acker", help="mark stored dossiers synced on the one-stop system")
    commands.add_parser("inspector", help="record page counts and PDF facts of stored files (run several)")
    commands.add_parser("corrections", help="send the archive's corrections to the one-stop system")
    commands.add_parser("onestop-sim", help="run the one-stop simulator (demo and tests)", add_help=False)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply the migrations (safe to run again)")
    db_commands.add_parser("current", help="show the schema revision")

    from cli import operator_commands

    operator_commands.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["onestop-sim"]:
        from services.onestop_sim.cli import main as simulator_main

        return simulator_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command in SERVICES:
        return _run_service(args.command, args)
    if args.command == "db":
        return _db(args)
    from cli import operator_commands

    try:
        return operator_commands.run(args)
    except BrokenPipeError:
        # The reader went away (`dongbo dlq list | head`): stop quietly, as other command-line tools do.
        from cli.common import silence_stdout

        silence_stdout()
        return 141


def _db(args: argparse.Namespace) -> int:
    from shared.db.engine import HEAD_REVISION, current_revision, make_engine, upgrade
    from shared.errors import ConfigError
    from shared.settings import load_settings

    try:
        settings = load_settings()
        url = settings.database_url.get_secret_value()
        if args.db_command == "upgrade":
            upgrade(url)
            print(f"database schema at revision {HEAD_REVISION}")
        else:
            print(current_revision(make_engine(url)) or "empty (run: dongbo db upgrade)")
    except ConfigError as exc:
        print(f"dongbo db: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
