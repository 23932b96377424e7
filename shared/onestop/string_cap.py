"""Cuts every JSON string of a streamed body at a fixed number of bytes, before the JSON parser sees it.

The C parser under ijson (yajl) re-reads a string token from its start each time a new chunk of the body
arrives inside it: a string spread over n chunks costs n² work. A sync answer with one 25 MB field took 12
seconds to parse (40 seconds with `\\u` escapes), and the cost grows with the square of the size: one hostile
or careless field could hold the fetcher for hours. No real field is anywhere near a mebibyte (the longest
text accepted is `DONGBO_MAX_FIELD_CHARS`), so every string longer than `max_bytes` is cut there and ends
with `CUT_MARK`; the dossier that holds it is then refused as too long, as it would have been, but at once.

The scan is linear: it looks only at quotes and backslashes (`bytes.find` and one regular expression), and
keeps its state across chunks (inside a string or not, an escape cut by a chunk's end, the length so far).
"""

from __future__ import annotations

import re

CUT_MARK = b"...[cut by dongbo: longer than the largest string read]"
# Outside strings: runs of other bytes and whole strings. Inside one: its characters and whole escapes.
# Possessive (`*+`, `++`): a string that does not close in the chunk must fail at once, never backtrack.
_WHOLE_STRINGS = re.compile(rb'(?:[^"]++|"(?:[^"\\]++|\\.)*+")*+', re.S)
_STRING_BODY = re.compile(rb'(?:[^"\\]++|\\.)*+', re.S)
_ESCAPE_AT_END = re.compile(rb"\\(?:u[0-9a-fA-F]{0,3}|u[dD][89abAB][0-9a-fA-F]{2}(?:\\(?:u[0-9a-fA-F]{0,3})?)?)?$")
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")


class StringCap:
    """Feed the body's chunks in order; each call returns the same bytes with over-long strings cut.

    An escape (`\\n`, `\\u1ea1`, a surrogate pair) or a UTF-8 character is never split: one cut by a chunk's
    end waits for the next chunk, so every piece of a string handled here starts and ends between them, and a
    cut never breaks one."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.cut_strings = 0  # how many strings were cut, for the log
        self._in_string = False
        self._carry = b""  # the start of an escape or a character that the last chunk cut short
        self._length = 0  # bytes of the current string so far
        self._cutting = False  # the current string is past max_bytes: its bytes are dropped

    def feed(self, chunk: bytes) -> bytes:
        if self._carry:
            chunk, self._carry = self._carry + chunk, b""
        tail = _open_utf8_tail(chunk)
        if tail:
            chunk, self._carry = chunk[: -len(tail)], tail
        out: list[bytes] = []
        pos, end = 0, len(chunk)
        while pos < end:
            if self._in_string:
                pos = self._rest_of_string(out, chunk, pos)
                continue
            # Outside a string: every whole string and everything between, matched at C speed. Only a
            # stretch longer than max_bytes could hold a string to cut: that is looked at string by string.
            stop = _end_of_match(_WHOLE_STRINGS, chunk, pos)
            if stop - pos > self.max_bytes:
                stop = chunk.find(b'"', pos)
                stop = end if stop < 0 else stop
            out.append(chunk[pos : min(stop + 1, end)])
            if stop < end:  # an opening quote
                self._in_string, self._length, self._cutting = True, 0, False
            pos = stop + 1
        return b"".join(out)

    def flush(self) -> bytes:
        """At the end of the body: an escape or a character left open (a body cut short; the parser says so)."""
        carry, self._carry = self._carry, b""
        return carry

    def _rest_of_string(self, out: list[bytes], chunk: bytes, pos: int) -> int:
        """Hands on the open string from `pos` up to its closing quote or the chunk's end; returns where it
        stopped."""
        stop = _end_of_match(_STRING_BODY, chunk, pos)
        if stop < len(chunk) and chunk[stop] == 0x22:  # closed here
            self._string_part(out, chunk[pos:stop])
            out.append(b'"')
            self._in_string = False
            return stop + 1
        held = _open_escape(chunk, pos)  # an escape the next chunk completes
        self._string_part(out, chunk[pos:held])
        self._carry = chunk[held:] + self._carry
        return len(chunk)

    def _string_part(self, out: list[bytes], part: bytes) -> None:
        if self._cutting or not part:
            return
        if self._length + len(part) <= self.max_bytes:
            out.append(part)
            self._length += len(part)
            return
        kept = _safe_prefix(part[: self.max_bytes - self._length])
        out.append(kept + CUT_MARK)
        self._cutting = True
        self.cut_strings += 1


def _end_of_match(pattern: re.Pattern[bytes], chunk: bytes, pos: int) -> int:
    found = pattern.match(chunk, pos)
    assert found is not None  # both patterns match the empty string at worst
    return found.end()


def _open_escape(chunk: bytes, pos: int) -> int:
    """Where an escape at the end of `chunk` (after `pos`) begins that is not whole yet: a lone `\\`, `\\u1e`,
    or the first half of a surrogate pair; `len(chunk)` when there is none."""
    end = len(chunk)
    found = _ESCAPE_AT_END.search(chunk, max(pos, end - 12))
    while found is not None:
        at = found.start()
        if at >= pos and _escape_starts(chunk, at) and _incomplete(chunk[at:]):
            return at
        found = _ESCAPE_AT_END.search(chunk, at + 1)
    return end


def _incomplete(escape: bytes) -> bool:
    if escape == b"\\":
        return True
    if escape[1:2] != b"u":
        return False
    if len(escape) < 6:
        return True
    # A high surrogate waits for its low half; a whole pair (12 bytes) is complete.
    return len(escape) < 12 and _HIGH_SURROGATE.fullmatch(escape, 0, 6) is not None


def _open_utf8_tail(data: bytes) -> bytes:
    """The last bytes of `data` when they are the start of a UTF-8 character whose other bytes are still to come."""
    for back in range(1, min(4, len(data) + 1)):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: look further back for the lead
            continue
        if byte < 0xC0:  # ASCII: nothing open
            return b""
        needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return data[-back:] if needed > back else b""
    return b""


def _escape_starts(data: bytes, at: int) -> bool:
    """Whether the backslash at `at` begins an escape (an even run of backslashes stands before it)."""
    before = at
    while before > 0 and data[before - 1] == 0x5C:
        before -= 1
    return (at - before) % 2 == 0


def _safe_prefix(data: bytes) -> bytes:
    """`data` without a trailing piece of an escape (`\\`, `\\u12`) or of a UTF-8 character.

    `data` starts where no escape is open (the parts handed to `_string_part` keep each escape whole)."""
    start = data.find(b"\\")
    last = -1
    while start >= 0:  # escape starts, from the left: `\\\\` is one escape, not two backslashes
        last = start
        start = data.find(b"\\", start + 2)
    if last >= 0 and last + (6 if data[last + 1 : last + 2] == b"u" else 2) > len(data):
        data = data[:last]
    if len(data) >= 6 and _HIGH_SURROGATE.fullmatch(data, len(data) - 6) and _escape_starts(data, len(data) - 6):
        data = data[:-6]  # the first half of a `\\ud83d\\ude00` pair: alone it is no character
    while data and data[-1] & 0xC0 == 0x80:  # continuation bytes of a character cut short
        data = data[:-1]
    if data and data[-1] >= 0xC0:  # the lead byte of that character
        data = data[:-1]
    return data
