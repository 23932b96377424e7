"""What every operator command shares: settings built once, errors in one line, secrets kept out of output."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from shared.errors import ConfigError
from shared.logs import redact


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***` (the user name stays: it helps and is not secret)."""
    parts = urlsplit(url)
    if parts.password is None:
        return redact(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return redact(urlunsplit(parts._replace(netloc=netloc)))


def one_line(exc: BaseException) -> str:
    """An error as one short line without secrets; pika's and SQLAlchemy's errors wrap the useful one."""
    seen = 0
    while seen < 5:  # pika: AMQPConnectionError(AMQPConnectorSocketConnectError(ConnectionRefusedError(...)))
        # SQLAlchemy's .orig, urllib3's .reason, pika's .exception, or a lone argument.
        inner = (getattr(exc, "orig", None) or getattr(exc, "reason", None) or getattr(exc, "exception", None)
                 or (exc.args[0] if len(exc.args) == 1 else None))
        if not isinstance(inner, BaseException):
            break
        exc, seen = inner, seen + 1
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    return redact(text)


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
