"""A file-like view of a response body for ijson: counts bytes, can look ahead, and can replay a first look.

The sync response has no fixed shape, so the parser first looks at the start of the body (array or object?
which key holds the list?) and then parses it again from the beginning. Only the bytes of that first look
are kept, never the whole body.
"""

from __future__ import annotations

import codecs
from typing import Protocol

from shared.errors import MalformedResponse, ResponseTooLarge
from shared.onestop.string_cap import StringCap

CHUNK = 64 * 1024
JSON_SPACE = b" \t\r\n"
# The first look rarely needs more than one chunk; a body that hides its list further away is refused.
RECORD_LIMIT = 16 * 1024**2


class Readable(Protocol):
    """What a body is read from: a file opened in binary mode, or a streamed HTTP response."""

    def read(self, size: int = -1, /) -> bytes: ...


class BodyReader:
    """Reads `source` with a byte limit; `peek()` and `record()`/`replay()` let a parser look before it leaps."""

    def __init__(self, source: Readable, max_bytes: int | None = None, what: str = "the response",
                 setting: str | None = "DONGBO_MAX_SYNC_RESPONSE_BYTES", max_string_bytes: int | None = None):
        self._source = source
        # Strings longer than this are cut before the parser sees them (string_cap.py says why).
        self.strings = StringCap(max_string_bytes) if max_string_bytes else None
        self._max_bytes = max_bytes
        self._what = what
        self._setting = setting  # named in the error, so an operator knows what to raise
        self._pending = b""  # bytes already read from the source, handed out again before reading on
        self._offset = 0  # how much of _pending was handed out
        self._recording: list[bytes] | None = None
        self._recorded = 0
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        if self._offset < len(self._pending):
            end = len(self._pending) if size is None or size < 0 else self._offset + size
            # An offset rather than slicing off the front: that would copy the rest at every read.
            chunk = self._pending[self._offset : end]
            self._offset += len(chunk)
        else:
            self._pending, self._offset = b"", 0  # all handed out: let it go
            chunk = self._read_source(size if size and size > 0 else CHUNK)
        if self._recording is not None and chunk:
            self._recorded += len(chunk)
            if self._recorded > RECORD_LIMIT:
                raise MalformedResponse(f"{self._what}: no list of results in its first {RECORD_LIMIT // 1024**2} MiB")
            self._recording.append(chunk)
        return chunk

    def peek(self) -> bytes:
        """The first byte that is not whitespace (after a UTF-8 BOM, which some servers send), or b"" if none."""
        data = b""
        at_start = True
        while True:
            chunk = self._read_source(CHUNK)
            data += chunk
            if at_start and (len(data) >= len(codecs.BOM_UTF8) or not chunk):
                data = data.removeprefix(codecs.BOM_UTF8)
                at_start = False
            if not at_start:
                data = data.lstrip(JSON_SPACE)  # so that a body of only spaces is not kept in memory
            if (data and not at_start) or not chunk:
                break
        self._pending, self._offset = data + self._pending[self._offset :], 0
        return data[:1]

    def record(self) -> None:
        """From now on keep what is read, so that it can be read again."""
        self._recording = []
        self._recorded = 0

    def replay(self) -> None:
        """The next reads start again where `record()` was called."""
        if self._recording is not None:
            self._pending, self._offset = b"".join(self._recording) + self._pending[self._offset :], 0
        self._recording = None
        self._recorded = 0

    def _read_source(self, size: int) -> bytes:
        while True:
            chunk = self._source.read(size)
            self.bytes_read += len(chunk)
            if self._max_bytes is not None and self.bytes_read > self._max_bytes:
                named = f" ({self._setting})" if self._setting else ""
                raise ResponseTooLarge(f"{self._what} is larger than {self._max_bytes} bytes{named}")
            if self.strings is None:
                return chunk
            if not chunk:
                return self.strings.flush()
            kept = self.strings.feed(chunk)
            if kept:  # a chunk wholly inside a string being cut gives nothing: b"" would read as the end
                return kept
