"""One item of a sync response → a validated `Dossier`, or an `InvalidDossier` that says what is wrong.

A bad item never stops the response: it is returned as `InvalidDossier` (to be dead-lettered with its
reason) and its neighbours still come.
"""

from __future__ import annotations

import json
import unicodedata
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from shared.errors import MalformedDossier, TooManyFiles
from shared.onestop.models import Dossier, InvalidDossier

ERRORS_SHOWN = 5
# `file_dinh_kem` may be JSON text; text holding JSON text holding the list is tolerated, no deeper.
MAX_STRING_NESTING = 2


def to_dossier(raw: Any, madonvi: str, max_files: int) -> Dossier | InvalidDossier:
    """Validates one item. The unit of the request fills a missing `madonvi`."""
    raw = plain(raw)
    if not isinstance(raw, dict):
        return InvalidDossier(None, madonvi, raw, f"a dossier must be a JSON object, not {kind_of(raw)}")
    mahoso = _code_or_none(raw.get("mahoso"))
    data = dict(raw)
    if data.get("madonvi") in (None, ""):
        data["madonvi"] = madonvi
    unit = _code_or_none(data["madonvi"]) or madonvi
    try:
        files = attachments_of(data.get("file_dinh_kem"))
    except ValueError as exc:
        return InvalidDossier(mahoso, unit, raw, f"file_dinh_kem: {exc}", MalformedDossier.reason)
    if len(files) > max_files:
        return InvalidDossier(
            mahoso, unit, raw,
            f"lists {len(files)} files, more than the limit of {max_files} (DONGBO_MAX_FILES_PER_DOSSIER)",
            TooManyFiles.reason,
        )
    data["file_dinh_kem"] = files
    try:
        return Dossier.model_validate(data)
    except ValidationError as exc:
        return InvalidDossier(mahoso, unit, raw, describe(exc), MalformedDossier.reason)


def attachments_of(value: Any, nesting: int = 0) -> list:
    """`file_dinh_kem` in any shape seen: a list, an object holding the list, JSON text of either, or nothing."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        if not value.strip():
            return []
        if nesting >= MAX_STRING_NESTING:
            raise ValueError("JSON text nested in JSON text too deeply")
        try:
            decoded = json.loads(value, parse_float=str, parse_constant=str)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"text that is not JSON ({exc.__class__.__name__}: {str(exc)[:80]})") from None
        return attachments_of(decoded, nesting + 1)
    if isinstance(value, dict):
        for inner in value.values():
            if isinstance(inner, list):
                return inner
        if "url_file" in value or "matailieu" in value:  # a single file, not wrapped in a list
            return [value]
        if all(inner in (None, "", {}) for inner in value.values()):
            return []
        raise ValueError(f"an object without a list of files (keys: {', '.join(map(str, list(value)[:5]))})")
    raise ValueError(f"must be a list of files, not {kind_of(value)}")


def plain(value: Any) -> Any:
    """ijson reads numbers with a fraction or exponent as Decimal: keep their text ("1.10" stays "1.10").

    Works in place and without recursion, so a deeply nested item cannot exhaust the stack.
    """
    if type(value) is Decimal:
        return str(value)
    stack = [value]
    while stack:
        node = stack.pop()
        # Replacing a value while iterating is safe: the keys do not change.
        pairs = node.items() if type(node) is dict else enumerate(node) if type(node) is list else ()
        for key, inner in pairs:
            kind = type(inner)
            if kind is str:
                continue
            if kind is Decimal:
                node[key] = str(inner)
            elif kind is dict or kind is list:
                stack.append(inner)
    return value


def describe(exc: ValidationError) -> str:
    """A short, one-line summary of what failed: field paths and messages, never the values."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = [
        f"{'.'.join(str(part) for part in error['loc']) or 'dossier'}: {error['msg']}"
        for error in errors[:ERRORS_SHOWN]
    ]
    more = f" (and {len(errors) - ERRORS_SHOWN} more)" if len(errors) > ERRORS_SHOWN else ""
    return "; ".join(parts) + more


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _code_or_none(value: Any) -> str | None:
    """The code to name a dossier by in logs, if it is one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        text = unicodedata.normalize("NFC", str(value)).strip()
        return text[:200] or None
    return None
