"""Log set-up: one line per event, JSON when not on a terminal, and secrets blanked out of every line.

Pass the dossier with `extra={"mahoso": ..., "madonvi": ...}`; the JSON line carries them as fields.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime

_secrets: set[str] = set()
_lock = threading.Lock()

FIELDS = ("mahoso", "madonvi", "service", "queue", "reason")


def add_secret(value: str | None) -> None:
    """Registers a value (password, token, key) that must never appear in a log line."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = redact(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["traceback"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = " ".join(
            f"{field}={getattr(record, field)}" for field in FIELDS if getattr(record, field, None) is not None
        )
        return f"{text} [{extras}]" if extras else text


def setup_logging(level: str = "INFO", as_json: bool | None = None) -> None:
    if as_json is None:
        as_json = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter() if as_json else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pika logs every reconnect attempt at length; its warnings are enough.
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
