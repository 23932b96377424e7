"""Log set-up: one line per event, JSON when not on a terminal, and secrets blanked out of every line.

Pass the dossier with `extra={"mahoso": ..., "madonvi": ...}`; the JSON line carries them as fields.
`redact_url` is the one way to show a URL that may hold a password; `one_line` the one way to show an error
(a refused connection is one line per attempt; its traceback only at DEBUG).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from urllib.parse import unquote

_secrets: set[str] = set()
_lock = threading.Lock()

FIELDS = ("mahoso", "madonvi", "service", "queue", "reason")


def add_secret(value: str | None) -> None:
    """Registers a value (password, token, key) that must never appear in a log line."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


# After the last "@" of the credentials comes a host: a name, an IPv4 or an [IPv6] literal, maybe a port.
_HOST_THEN_END = re.compile(r"[A-Za-z0-9.\-_~%]*(\[[0-9A-Fa-f:.%A-Za-z]*\])?(:\d*)?([/?#]|$)")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")


def _credentials_end(rest: str) -> int:
    """Where the user:password part of `rest` (a URL after "scheme://") ends: the index of its "@", or -1.

    The password may hold an unescaped "@", "/", "?" or "#", so the split is at the last "@" that a host
    follows; when a path holds "@" too, more is hidden rather than less.
    """
    for at in reversed([i for i, char in enumerate(rest) if char == "@"]):
        if _HOST_THEN_END.match(rest, at + 1):
            return at
    return -1


def url_password(url: str) -> str | None:
    """The password of a URL as written (None without one), whatever characters it holds."""
    scheme, sep, rest = url.partition("://")
    end = _credentials_end(rest) if sep else -1
    if end < 0 or ":" not in rest[:end]:
        return None
    return rest[:end].split(":", 1)[1]


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***` (the user name stays: it helps and is not secret)."""
    scheme, sep, rest = url.partition("://")
    end = _credentials_end(rest) if sep else -1
    if end >= 0 and ":" in rest[:end]:
        user = rest[:end].split(":", 1)[0]
        url = f"{scheme}://{user}:***{rest[end:]}"
    return _replace_secrets(url)


def redact(text: str) -> str:
    """The text with every registered secret and every password in a URL replaced by `***`."""
    if "://" in text:
        text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    return _replace_secrets(text)


def _replace_secrets(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def add_url_secret(url: str) -> None:
    """Registers a URL's password (as written and percent-decoded) so that no log line shows it."""
    password = url_password(url)
    if password:
        add_secret(password)
        add_secret(unquote(password))


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
    # pika logs a refused connection as several lines with tracebacks, on every attempt; dongbo's own line per
    # attempt says what failed and when it tries again. Their details are for DEBUG.
    debug = root.level <= logging.DEBUG
    logging.getLogger("pika").setLevel(logging.DEBUG if debug else logging.CRITICAL)
    logging.getLogger("urllib3").setLevel(logging.DEBUG if debug else logging.ERROR)
