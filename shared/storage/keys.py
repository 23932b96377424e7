"""Where an attachment lives in the bucket: `{unit}/{dossier}/{matailieu}/{digest}-{name}`.

The key is a pure function of the attachment, so a file seen twice lands on the same object (idempotent
stores) and nothing about the key depends on when or where it was computed.

Names come from the one-stop system and are untrusted: they may hold `..`, slashes, control characters,
bidi overrides, zero-width or fullwidth look-alikes, or be 10,000 characters long. Every segment is
therefore folded to a plain ASCII slug (Vietnamese diacritics dropped, `đ` → `d`), which no Unicode trick
survives and every S3 server, browser and shell handles. Slugs can collide ("Tờ khai.pdf" and
"To khai.pdf"), so the digest, taken over the exact inputs, keeps distinct attachments apart; the readable
slug is only there for the humans browsing the bucket. The original name stays in the database.

Unicode normalization, and why it differs by field: one key must never hold two different files, so
whatever decides *which bytes* are fetched must be hashed exactly. That is `url_file`: a URL written in
NFC and the same URL in NFD are percent-encoded to different request paths, which a file host may serve
as two different files (and the one-stop system lists them as two attachments); folded together, one
would silently replace the other. So `url_file` goes into the digest exactly as given. The other fields
(unit, dossier, matailieu, ten_file) only name the file: they are NFC-normalized, so the same name typed
as NFC or NFD stays one entry. Existing keys are unchanged for every URL that was already in NFC (the
form Vietnamese one-stop systems send): NFC of an NFC string is the string itself.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Protocol
from urllib.parse import unquote, urlsplit

SEGMENT_BYTES = 100  # each slug; four segments and three slashes stay far below S3's 1024 bytes
DIGEST_HEX = 16  # 64 bits: no accidental collision among a province's files
EXTENSION_CHARS = 10

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
# Letters NFKD does not decompose into an ASCII base letter.
_FOLD = str.maketrans({"đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L"})
_RUNS = re.compile(r"([-._])[-._]*")
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._-]")


class NamedFile(Protocol):
    """What a key needs of an attachment (shared.onestop.models.Attachment fits)."""

    @property
    def matailieu(self) -> str: ...
    @property
    def url_file(self) -> str: ...
    @property
    def ten_file(self) -> str: ...


def object_key(madonvi: str, mahoso: str, attachment: NamedFile) -> str:
    """The object key of one attachment of one dossier; the same inputs always give the same key."""
    unit = slug(madonvi, SEGMENT_BYTES)
    dossier = slug(mahoso, SEGMENT_BYTES)
    document = slug(attachment.matailieu, SEGMENT_BYTES)
    digest = entry_digest(madonvi, mahoso, attachment)
    name = _file_name(attachment.ten_file or _url_basename(attachment.url_file), SEGMENT_BYTES - DIGEST_HEX - 1)
    return f"{unit}/{dossier}/{document}/{digest}-{name}"


def entry_digest(madonvi: str, mahoso: str, attachment: NamedFile) -> str:
    """First 16 hex digits of SHA-256 over the raw entry, so slug collisions never merge two files.

    Each naming field is NFC-normalized (the same name typed as NFC or NFD is one entry); `url_file` is
    taken exactly, because it decides which bytes are fetched (see the module's docstring). Every field is
    length-prefixed, so no two different tuples hash the same bytes ("a|b","c" vs "a","b|c").
    """
    sha = hashlib.sha256()
    for field, exact in (
        (madonvi, False),
        (mahoso, False),
        (attachment.matailieu, False),
        (attachment.url_file, True),
        (attachment.ten_file, False),
    ):
        text = (field or "") if exact else unicodedata.normalize("NFC", field or "")
        # surrogatepass: a lone surrogate from a JSON "\ud800" must not crash the key, only change it.
        data = text.encode("utf-8", "surrogatepass")
        sha.update(len(data).to_bytes(8, "big"))
        sha.update(data)
    return sha.hexdigest()[:DIGEST_HEX]


def slug(text: str, limit: int, fallback: str = "_") -> str:
    """ASCII letters, digits, `.`, `_`, `-`; no leading dot, no `..`, at most `limit` bytes; never empty."""
    text = text or ""
    if text.isascii():
        # Codes (madonvi, mahoso, matailieu) are ASCII: NFKD and the fold leave them as they are, and
        # no character is combining, so one substitution does what the loop below does, far faster.
        folded = _UNSAFE_ASCII.sub("-", text)
    else:
        # NFKD maps fullwidth and other compatibility look-alikes (／, ．) onto ASCII, then splits Vietnamese
        # letters into base letter + combining marks, which are dropped.
        chars = []
        for ch in unicodedata.normalize("NFKD", text.translate(_FOLD)):
            if ch in _SAFE:
                chars.append(ch)
            elif not unicodedata.combining(ch):
                chars.append("-")  # separators, slashes, controls, bidi, zero-width, other scripts
        folded = "".join(chars)
    # A run of separators keeps its first one: no "..", no "--" noise, "a / b" → "a-b".
    result = _RUNS.sub(r"\1", folded).strip("._-")
    result = result[:limit].rstrip("._-")
    return result or fallback


def _file_name(name: str, limit: int) -> str:
    """The slug of a file name, keeping its extension when it is a short, plain one."""
    name = unicodedata.normalize("NFC", name or "")
    stem, dot, extension = name.rpartition(".")
    if dot and stem.strip() and extension.isascii() and extension.isalnum() and len(extension) <= EXTENSION_CHARS:
        suffix = "." + extension.lower()
    else:
        stem, suffix = name, ""  # "report.final version", "x.tạm", ".pdf": no extension worth keeping
    return slug(stem, limit - len(suffix), fallback="file") + suffix


def _url_basename(url: str) -> str:
    """A name for an attachment without `ten_file`: the last path segment of its URL."""
    try:
        path = urlsplit(url or "").path
    except ValueError:
        return ""
    return unquote(path.rsplit("/", 1)[-1])
