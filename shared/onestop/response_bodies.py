"""What the one-stop system's JSON answers mean: error bodies, the `status` of an update, wrapped lists.

The document shows errors as `{"error": "...", "code": "400"}` and updates as `{"status": 200, "message": ...}`,
both possibly sent with HTTP 200, so the body, not the HTTP status, decides whether a call worked.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.errors import OneStopError, OneStopRefused, OneStopUnavailable, TokenExpired

# Words in an error message that mean the session, not the request, was refused. Not a bare "hết hạn"
# (expired): a dossier can be "hết hạn" too, and a request error must not pass for a token error.
_TOKEN_WORDS = (
    "token",
    "phiên đăng nhập",
    "phiên làm việc",
    "đăng nhập lại",
    "session",
    "unauthorized",
    "unauthenticated",
)

MESSAGE_LIMIT = 300  # a server's error text goes into logs and exceptions: keep it short


@dataclass(frozen=True)
class ErrorBody:
    """An error answer of the one-stop system."""

    message: str
    code: str | None = None

    @property
    def status(self) -> int | None:
        """The code as an HTTP-like number, when it is one."""
        return as_int(self.code)

    @property
    def is_token_error(self) -> bool:
        """The token was refused (expired, unknown): log in again and retry."""
        if self.status in (401, 403):
            return True
        text = unicodedata.normalize("NFC", self.message).casefold()
        return any(word in text for word in _TOKEN_WORDS)

    @property
    def is_server_fault(self) -> bool:
        """A 5xx or 429 sent in the body (HTTP 200): a fault that may heal, like the same HTTP status."""
        status = self.status
        return status is not None and (status >= 500 or status == 429)

    def __str__(self) -> str:
        return f"{self.message} (code {self.code})" if self.code else self.message


def as_int(value: Any) -> int | None:
    """200, "200", Decimal("200") → 200; anything else → None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (str, Decimal)):
        try:
            return int(str(value).strip())
        except ValueError:
            return None
    return None


def short_text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    text = unicodedata.normalize("NFC", " ".join(text.split()))
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def error_of(body: Any, *, has_list: bool = False) -> ErrorBody | None:
    """The error a body reports, or None.

    A non-empty `error` always is one. Without a list of results, a `code`/`status` of 400 or more, or
    `"success": false`, is one too (`{"status": 401, "message": "Token hết hạn"}`). Next to a list, only
    `error` counts, because some servers put `"code": 0` or similar beside good data.
    """
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if error not in (None, "", False, [], {}):
        if isinstance(error, dict):  # {"error": {"message": ..., "code": ...}}
            return ErrorBody(short_text(error.get("message") or error), _code(error) or _code(body))
        message = body.get("message") if error is True else error
        return ErrorBody(short_text(message or "error"), _code(body))
    if has_list:
        return None
    code = _code(body)
    status = as_int(code)
    if (status is not None and status >= 400) or body.get("success") is False:
        return ErrorBody(short_text(_message(body) or "error"), code)
    return None


def exception_for(error: ErrorBody, what: str, default: type[OneStopError] = OneStopError) -> OneStopError:
    """The exception an error body calls for: a refused token, a fault that may heal, or `default`."""
    if error.is_token_error:
        return TokenExpired(f"the one-stop system refused the token for {what}: {error}")
    if error.is_server_fault:
        return OneStopUnavailable(f"the one-stop system failed {what}: {error}")
    message = f"the one-stop system answered {what} with an error: {error}"
    if issubclass(default, OneStopRefused):
        return default(message, error.status, str(error))
    return default(message)


def status_ok(body: Any) -> bool:
    """An update worked only when its body says `"status": 200` (a number or text)."""
    return isinstance(body, dict) and as_int(body.get("status")) == 200 and error_of(body) is None


def token_in(body: Any) -> str | None:
    """The login's `{"token": ...}`, as documented, also when wrapped once (`{"data": {"token": ...}}`)."""
    if not isinstance(body, dict):
        return None
    for candidate in [body] + [value for value in body.values() if isinstance(value, dict)]:
        token = candidate.get("token")
        if isinstance(token, str) and token.strip():
            return token.strip()
    return None


def list_in(body: Any) -> list | None:
    """The list a body holds: the body itself, or the first value of an object that is a list."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, list):
                return value
    return None


def _code(body: dict) -> str | None:
    for key in ("code", "status", "statusCode"):
        value = body.get(key)
        if value not in (None, ""):
            return short_text(value)
    return None


def _message(body: dict) -> Any:
    for key in ("message", "msg", "error_description", "detail"):
        if body.get(key):
            return body[key]
    return None
