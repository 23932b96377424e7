"""The operator's subcommands; each lives in its own module with `add_parser(commands)` and `run(args)`."""

from __future__ import annotations

import argparse
import importlib

MODULES = (
    "healthcheck", "status", "check", "dlq", "backfill",
    "trace", "reconcile", "audit", "export", "inspect_pending",
    "web", "users", "file_commands",
)


def add_parsers(commands) -> None:
    for name in MODULES:
        importlib.import_module(f"cli.{name}").add_parser(commands)


def run(args: argparse.Namespace) -> int:
    return args.handler(args)
