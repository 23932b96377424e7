"""Reads a sync response (`dongbodulieumotcua`) as a stream: one dossier at a time, in bounded memory.

There is no paging: one response can hold every unsynced dossier of a unit, hundreds of megabytes. The
document's sample is not valid JSON, so the real shape is unknown (SPEC, "What the document leaves open").
Accepted shapes:
- a top-level array of dossiers;
- an object whose first key holding an array holds the dossiers (`{"data": [...]}`, `{"result": [...]}`);
- an error body (`{"error": ..., "code": ...}`, also with HTTP 200), raised as an exception;
- `[]`, `{"data": []}`, `{}` or an object of plain values without a list: no dossiers.
An empty body, invalid JSON or a body cut short raise a transient error, never an empty result: "no
dossiers" must only ever mean that the one-stop system said so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import ijson

from shared.errors import MalformedResponse, TruncatedBody
from shared.onestop.body_reader import BodyReader, Readable
from shared.onestop.dossier_items import plain, to_dossier
from shared.onestop.models import Dossier, InvalidDossier
from shared.onestop.response_bodies import error_of, exception_for

log = logging.getLogger(__name__)

# The first look at an object reads small chunks, so that little is kept to be read again.
FIRST_LOOK_CHUNK = 8 * 1024
# No field of a dossier comes near this (the longest text accepted is DONGBO_MAX_FIELD_CHARS characters): a
# longer string is cut here, so that one giant field costs the parser nothing (string_cap.py), and the
# dossier holding it is refused as too long.
MAX_STRING_BYTES = 1024**2


def parse_dossiers(
    source: Readable,
    madonvi: str,
    *,
    max_files_per_dossier: int = 500,
    max_bytes: int | None = None,
) -> Iterator[Dossier | InvalidDossier]:
    """Yields every dossier of a sync response read from `source` (a binary file-like object).

    Raises TokenExpired or OneStopError for an error body, MalformedResponse / TruncatedBody for a body
    that is empty, not JSON or cut short (possibly after some dossiers were yielded), ResponseTooLarge past
    `max_bytes`.
    """
    what = f"the sync response for madonvi={madonvi}"
    reader = BodyReader(source, max_bytes, what, max_string_bytes=MAX_STRING_BYTES)
    dossiers = invalid = 0
    try:
        first = reader.peek()
        if first == b"[":
            raw_items = ijson.items(reader, "item")
        elif first == b"{":
            raw_items = _items_of_object(reader, what, f"dongbodulieumotcua for madonvi={madonvi}")
        elif not first:
            raise MalformedResponse(f"{what} is empty")
        else:
            raise MalformedResponse(f"{what} is not a JSON array or object (it starts with {first!r})")
        for raw in raw_items:
            item = to_dossier(raw, madonvi, max_files_per_dossier)
            if isinstance(item, InvalidDossier):
                invalid += 1
                log.warning("invalid dossier mahoso=%s madonvi=%s: %s", item.mahoso, item.madonvi, item.error)
            else:
                dossiers += 1
            yield item
    except ijson.JSONError as exc:
        raise _json_error(exc, what, reader.bytes_read, dossiers + invalid) from None
    if reader.strings is not None and reader.strings.cut_strings:
        log.warning("%s: %d strings longer than %d bytes were cut", what, reader.strings.cut_strings, MAX_STRING_BYTES)
    log.info("read %d dossiers (%d invalid) for madonvi=%s from %d bytes",
             dossiers + invalid, invalid, madonvi, reader.bytes_read)


def _items_of_object(reader: BodyReader, what: str, call: str) -> Iterator[Any]:
    """The items of the first top-level array of an object, after checking the object for an error."""
    reader.record()
    key, values, nested = _first_look(reader)
    reader.replay()
    error = error_of(plain(values), has_list=key is not None)
    if error is not None:
        raise exception_for(error, call)
    if key is None:
        if nested:
            # Dossiers hidden somewhere unknown must not pass for "nothing to sync".
            raise MalformedResponse(
                f"{what} is an object without a list of dossiers (it holds {', '.join(nested[:5])})"
            )
        return
    # ijson joins keys with dots without escaping them, so the key as is matches its own prefix.
    yield from ijson.items(reader, f"{key}.item")


def _first_look(reader: BodyReader) -> tuple[str | None, dict[str, Any], list[str]]:
    """Walks the top level of an object up to its first array.

    Returns the key of that array (None if there is none), the plain values seen before it (where an error
    body says what it says) and the keys of non-empty objects seen before it.
    """
    values: dict[str, Any] = {}
    nested: list[str] = []
    depth = 0
    key: str | None = None
    # The parser is simply dropped when the array is found; the reader replays what it read.
    for _prefix, event, value in ijson.parse(reader, buf_size=FIRST_LOOK_CHUNK):
        if event in ("start_map", "start_array"):
            depth += 1
            if depth == 2 and event == "start_array":
                return key, values, nested
        elif event in ("end_map", "end_array"):
            depth -= 1
        elif depth == 1:
            if event == "map_key":
                key = value
            elif key is not None:
                values[key] = value
        elif depth == 2 and event == "map_key" and key is not None and key not in nested:
            nested.append(key)
    return None, values, nested


def _json_error(exc: ijson.JSONError, what: str, bytes_read: int, items: int) -> Exception:
    """Turns a parser error into a transient error that says where the body broke."""
    text = exc.args[0] if exc.args else ""
    if isinstance(text, bytes):  # the C backend sometimes reports in bytes
        text = text.decode("utf-8", "replace")
    # Only the first line: the lines after it quote the body.
    detail = str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
    where = f"after {bytes_read} bytes and {items} dossiers"
    if "premature EOF" in detail:
        return TruncatedBody(f"{what} ended early {where} (the transfer was cut short)")
    return MalformedResponse(f"{what} is not valid JSON {where}: {detail}")
