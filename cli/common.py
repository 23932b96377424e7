"""What every operator command shares: settings built once, errors in one line, secrets kept out of output."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from shared.errors import ConfigError
from shared.logs import one_line, redact, redact_url

__all__ = ["one_line", "operator_command", "prepare", "redact", "redact_url", "table"]


def prepare(settings) -> None:
    """Registers the settings' secrets for redaction and sends warnings to stderr without them."""
    from shared.logs import setup_logging
    from shared.service import register_secrets

    register_secrets(settings)
    # A host program (pytest, an embedding script) that configured logging keeps its own set-up.
    if not logging.getLogger().handlers:
        setup_logging("WARNING", bool(settings.log_json))
        # pika and urllib3 log each failed attempt at length; the command's own line says what failed.
        logging.getLogger("pika").setLevel(logging.CRITICAL)
        logging.getLogger("urllib3").setLevel(logging.ERROR)


def operator_command(name: str, body: Callable) -> Callable[[argparse.Namespace], int]:
    """Wraps `body(settings, args) -> int`: settings built once; a ConfigError ends it with exit code 2."""

    def run(args: argparse.Namespace) -> int:
        from shared.settings import load_settings

        try:
            settings = load_settings()
            prepare(settings)
            return body(settings, args)
        except ConfigError as exc:
            print(f"dongbo {name}: {redact(str(exc))}", file=sys.stderr)
            return 2

    return run


def table(headers: list[str], rows: list[list], right: set[int] | None = None) -> str:
    """Plain aligned text; columns in `right` (numbers) are right-aligned."""
    right = right or set()
    cells = [[str(c) for c in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [row[i].rjust(widths[i]) if i in right else row[i].ljust(widths[i]) for i in range(len(row))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def silence_stdout() -> None:
    """After a closed pipe: Python flushes standard output once more at exit, into that pipe, and prints a
    traceback; pointing the descriptor at /dev/null keeps it quiet."""
    import contextlib
    import os

    with contextlib.suppress(OSError, ValueError):  # not a real descriptor (output captured in-process)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
