"""`dongbo inspector`: the PDF-facts service (services/inspector), registered beside the operator commands."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    parser = commands.add_parser("inspector", help="record page counts and PDF facts of stored files (run several)")
    parser.set_defaults(handler=run)


def run(_args: argparse.Namespace) -> int:
    from services.inspector.service import build
    from shared.service import main

    return main("inspector", build)
