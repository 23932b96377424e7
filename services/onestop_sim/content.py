"""The bytes of a generated attachment: a small valid PDF of 1-12 pages padded to an exact size, made in chunks.

Nothing is stored: the bytes are a pure function of (seed, file id, size, the text on the page), so a
1 GB file streams in bounded memory and every download of a file gets the same bytes. The padding is an
unreferenced stream object (allowed by the PDF format) filled from a 1 MiB pool of seeded random bytes,
read from an offset that depends on the file: copying slices of it is far cheaper than generating.
Numbers whose width would depend on the size (/Length, startxref) are zero-padded to a fixed width, so
the skeleton's length does not depend on the padding and one pass gives the exact size.

The page count is drawn from (seed, file id), so it is known without reading the file: `/_sim/dossiers`
shows it and a test compares it with what dongbo's inspector counted. The pages share one content stream
and inherit their MediaBox and font from the page tree, so each costs about 80 bytes; a file too small for
its drawn count gets as many pages as fit in it.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

CHUNK = 64 * 1024
POOL_SIZE = 1 << 20
TEXT_LIMIT = 160
# Every generated file is at least this big: the skeleton with the longest page text fits in it.
MIN_SIZE = 1024
MAX_PAGES = 12


@lru_cache(maxsize=4)
def _pool(seed: int) -> bytes:
    return random.Random(f"onestop-sim-content-{seed}").randbytes(POOL_SIZE)


def ascii_text(text: str) -> str:
    """Page text in plain ASCII: the PDF's built-in Helvetica font cannot show Vietnamese diacritics."""
    text = text.replace("đ", "d").replace("Đ", "D")
    folded = "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))
    folded = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in folded)[:TEXT_LIMIT]
    # Escaped after cutting, so a cut never splits an escape and leaves the string unterminated.
    return folded.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


@dataclass(frozen=True)
class Layout:
    """A generated file: `head`, then `pad` bytes from the pool starting at `offset`, then `tail`."""

    head: bytes
    pad: int
    tail: bytes
    offset: int
    seed: int
    pages: int = 1

    @property
    def size(self) -> int:
        return len(self.head) + self.pad + len(self.tail)

    def chunks(self, chunk: int = CHUNK) -> Iterator[bytes]:
        yield self.head
        pool, done = _pool(self.seed), 0
        while done < self.pad:
            start = (self.offset + done) % POOL_SIZE
            n = min(chunk, self.pad - done, POOL_SIZE - start)
            yield pool[start:start + n]
            done += n
        yield self.tail

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for part in self.chunks(1 << 20):
            digest.update(part)
        return digest.hexdigest()


def drawn_pages(seed: int, file_id: int) -> int:
    """1..MAX_PAGES, a pure function of the seed and the file id (no shared random state)."""
    digest = hashlib.sha256(f"onestop-sim-pages-{seed}-{file_id}".encode()).digest()
    return digest[0] % MAX_PAGES + 1


def layout(seed: int, file_id: int, size: int, text: str) -> Layout:
    """The PDF for one file, exactly `size` bytes long (or MIN_SIZE if `size` is smaller)."""
    for pages in range(drawn_pages(seed, file_id), 0, -1):
        made = _layout(seed, file_id, size, text, pages)
        if made is not None:
            return made
    raise ValueError(f"page text too long for MIN_SIZE ({MIN_SIZE} bytes)")


def _layout(seed: int, file_id: int, size: int, text: str, pages: int) -> Layout | None:
    """Objects: 1 catalog, 2 page tree, 3 the shared page content, 4 the font, 5.. the pages, then the padding."""
    page = b"BT /F1 11 Tf 40 800 Td (" + ascii_text(text).encode("ascii") + b") Tj ET"
    kids = b" ".join(b"%d 0 R" % (5 + n) for n in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> >>" % (kids, pages),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(page), page),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ] + [b"<< /Type /Page /Parent 2 0 R /Contents 3 0 R >>"] * pages
    head = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(head))
        head += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    pad_number = len(objects) + 1
    offsets.append(len(head))
    pad_header = b"%d 0 obj\n<< /Length %%010d >>\nstream\n" % pad_number
    pad_footer = b"\nendstream\nendobj\n"
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % (pad_number + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%%010d\n%%%%%%%%EOF\n" % (pad_number + 1)
    fixed = len(head) + len(pad_header % 0) + len(pad_footer) + len(xref) + len(trailer % 0)
    pad = max(size, MIN_SIZE) - fixed
    if pad < 0:
        return None
    head += pad_header % pad
    tail = pad_footer + xref + trailer % (len(head) + pad + len(pad_footer))
    offset = (file_id * 2654435761 + seed * 40503) % POOL_SIZE
    return Layout(bytes(head), pad, tail, offset, seed, pages)


def page_text(mahoso: str, matailieu: str, ten_file: str) -> str:
    return f"Ho so {mahoso} - tai lieu {matailieu} - {ten_file}"


def file_etag(seed: int, file_id: int, size: int, sha256: str | None = None) -> str:
    """Strong validator: generated bytes depend only on these values; uploaded ones on their hash."""
    return f'"{sha256[:32]}"' if sha256 else f'"sim-{seed:x}-{file_id:x}-{size:x}"'
