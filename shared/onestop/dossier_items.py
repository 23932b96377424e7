"""One item of a sync response → a validated `Dossier`, or an `InvalidDossier` that says what is wrong.

A bad item never stops the response: it is returned as `InvalidDossier` (to be dead-lettered with its
reason) and its neighbours still come. The same checks run wherever a dossier enters: the fetcher's poll
(`to_dossier` while the answer is read, then `check_limits` with the configured limits) and the replay of a
dossier the fetcher parked (`validate`, which is both), so a replay can never let through what a poll would
have parked.

Limits that keep one item from harming its neighbours: nesting depth (MAX_DEPTH; every JSON walk after this
point may recurse), size (DONGBO_MAX_ITEM_BYTES on the message the dossier becomes, HARD_MAX_ITEM_BYTES on
the item itself whatever the settings say, well under the broker's 16 MiB message limit) and the length of
each text field (DONGBO_MAX_FIELD_CHARS).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from shared.errors import DossierTooLarge, FieldTooLong, MalformedDossier, TooManyFiles
from shared.onestop.models import CODE_CHARS, Dossier, InvalidDossier

ERRORS_SHOWN = 5
# `file_dinh_kem` may be JSON text; text holding JSON text holding the list is tolerated, no deeper.
MAX_STRING_NESTING = 2
# A dossier is four levels deep (dossier, file list, file, field); unknown extra fields get room to spare.
MAX_DEPTH = 32
# No setting can let an item past this: its copy must still fit in one dead-letter message.
HARD_MAX_ITEM_BYTES = 12 * 1024**2
# A dead-lettered summary keeps this much of each top-level text value.
SUMMARY_CHARS = 200
SUMMARY_MARK = "_dongbo_summary"  # the key that tells a summary from a copy of the item


@dataclass(frozen=True)
class ItemLimits:
    """The limits a dossier must meet (the defaults are the settings' defaults)."""

    max_field_chars: int = 4000
    max_item_bytes: int = 4 * 1024**2
    max_files: int = 500

    @classmethod
    def from_settings(cls, settings: Any) -> ItemLimits:
        return cls(settings.max_field_chars, settings.max_item_bytes, settings.max_files_per_dossier)


def validate(raw: Any, madonvi: str, limits: ItemLimits) -> Dossier | InvalidDossier:
    """Everything the fetcher checks, in one call: what a replay of a parked dossier runs."""
    item = to_dossier(raw, madonvi, limits.max_files)
    if isinstance(item, InvalidDossier):
        return item
    return check_limits(item, limits, message_bytes(item))


def message_bytes(dossier: Dossier) -> int:
    """The size of the message the fetcher makes of this dossier (what the broker has to take)."""
    from shared.messages import DossierFetched  # messages import this package's models

    return len(DossierFetched.of(dossier).to_bytes())


def check_limits(dossier: Dossier, limits: ItemLimits, size: int) -> Dossier | InvalidDossier:
    """The configured limits on a dossier that passed `to_dossier`; `size` is `message_bytes(dossier)`."""
    long = [(name, len(value)) for name, value in _text_fields(dossier) if len(value) > limits.max_field_chars]
    if long or size > limits.max_item_bytes:
        raw = dossier.model_dump(mode="json")
        if size > HARD_MAX_ITEM_BYTES:
            raw = summary(raw, dossier.mahoso, dossier.madonvi, size, "larger than any limit allows",
                          DossierTooLarge.reason)
        if long:
            shown = ", ".join(f"{name} has {chars} characters" for name, chars in long[:ERRORS_SHOWN])
            error = f"{shown}; the limit is {limits.max_field_chars} (DONGBO_MAX_FIELD_CHARS)"
            return InvalidDossier(dossier.mahoso, dossier.madonvi, raw, error, FieldTooLong.reason)
        error = f"is {size} bytes as a message, more than {limits.max_item_bytes} (DONGBO_MAX_ITEM_BYTES)"
        return InvalidDossier(dossier.mahoso, dossier.madonvi, raw, error, DossierTooLarge.reason)
    return dossier


def _text_fields(dossier: Dossier):
    for name in ("tentochuccanhan", "tenthutuc"):
        yield name, getattr(dossier, name)
    for n, file in enumerate(dossier.file_dinh_kem):
        for name in ("tentailieu", "ten_file", "url_file"):
            yield f"file_dinh_kem.{n}.{name}", getattr(file, name)


def to_dossier(raw: Any, madonvi: str, max_files: int) -> Dossier | InvalidDossier:
    """Validates one item. The unit of the request fills a missing `madonvi`."""
    depth, size = measure(raw)
    if depth > MAX_DEPTH or size > HARD_MAX_ITEM_BYTES:
        # Checked before anything walks the item recursively (json.dumps, pydantic, the dead letter).
        mahoso = _code_or_none(raw.get("mahoso")) if isinstance(raw, dict) else None
        why = f"nested more than {MAX_DEPTH} levels deep" if depth > MAX_DEPTH else f"about {size} bytes"
        error = (f"the dossier is {why}" if depth > MAX_DEPTH
                 else f"the dossier is {why}, more than any limit allows ({HARD_MAX_ITEM_BYTES})")
        reason = MalformedDossier.reason if depth > MAX_DEPTH else DossierTooLarge.reason
        return InvalidDossier(mahoso, madonvi, summary(raw, mahoso, madonvi, size, why, reason), error, reason)
    raw = plain(raw)
    if not isinstance(raw, dict):
        return InvalidDossier(None, madonvi, raw, f"a dossier must be a JSON object, not {kind_of(raw)}")
    if raw.get(SUMMARY_MARK):
        return InvalidDossier(_code_or_none(raw.get("mahoso")), madonvi, raw,
                              "only a summary of this dossier was kept; it must come again from the one-stop system",
                              str(raw.get("reason") or MalformedDossier.reason))
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


def measure(value: Any) -> tuple[int, int]:
    """(nesting depth, approximate size in bytes as JSON) of an item, without recursion.

    Stops counting once either passes its limit: a hostile item costs no more than a good one to judge.
    """
    stack = [(value, 1)]
    deepest = size = 0
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH or size > HARD_MAX_ITEM_BYTES:
            break
        if isinstance(node, str):
            size += len(node.encode("utf-8", "surrogatepass")) + 2
        elif isinstance(node, dict):
            size += 2
            for key, inner in node.items():
                size += len(str(key).encode("utf-8", "surrogatepass")) + 4
                stack.append((inner, depth + 1))
        elif isinstance(node, list):
            size += 2
            stack.extend((inner, depth + 1) for inner in node)
        else:
            size += 8
    return deepest, size


def summary(raw: Any, mahoso: str | None, madonvi: str, size: int, why: str,
            reason: str = MalformedDossier.reason) -> dict:
    """A bounded, flat stand-in for an item that cannot be copied whole into a dead letter; it keeps the
    reason it was parked with, so a replay parks it again under the same one."""
    fields: dict[str, Any] = {}
    if isinstance(raw, dict):
        for key, value in list(raw.items())[:50]:
            if isinstance(value, str):
                fields[str(key)[:SUMMARY_CHARS]] = value[:SUMMARY_CHARS] + ("…" if len(value) > SUMMARY_CHARS else "")
            else:
                fields[str(key)[:SUMMARY_CHARS]] = f"<{kind_of(value)}>"
    return {SUMMARY_MARK: True, "why": why, "reason": reason, "bytes": size, "mahoso": mahoso, "madonvi": madonvi,
            "kind": kind_of(raw), "fields": fields}


def parked_body(item: InvalidDossier) -> bytes:
    """The dead letter's body: the item as sent (bounded by `to_dossier`), or a summary where it cannot be."""
    try:
        text = json.dumps(item.raw, ensure_ascii=False, default=str, sort_keys=True)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: JSON's own escapes keep it
            return json.dumps(item.raw, default=str, sort_keys=True).encode("ascii")
    except (RecursionError, ValueError, TypeError) as exc:
        stand_in = summary(item.raw, item.mahoso, item.madonvi, 0, f"not copyable ({type(exc).__name__})",
                           item.reason)
        return json.dumps(stand_in, default=str, sort_keys=True).encode("ascii")


def safe_key(value: str | None, limit: int = CODE_CHARS) -> str:
    """A code as sent, made safe for a database key, a log line and a header: control characters escaped,
    at most `limit` characters (a long one keeps its start and a hash of the whole, so it stays unique)."""
    if not value:
        return ""
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates
    if len(text) > limit:
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        text = f"{text[:limit - 18]}~{digest}"
    return text


def _code_or_none(value: Any) -> str | None:
    """The code to name a dossier by in logs, if it is one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int, float)):
        text = unicodedata.normalize("NFC", str(value)).strip()
        return text[:100_000] or None  # made safe (and short) by safe_key where it is stored
    return None
