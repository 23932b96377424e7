"""What a stored file tells about itself as a PDF: page count, a digital signature, a PDF/A claim.

The file is spooled from S3 into a temporary file (memory up to SPOOL_MEMORY, then disk), because a PDF
is read from its end (the cross-reference table) and S3 streams only forward. A file over the size cap is
not opened. A file that is not a valid PDF is *flagged*, never refused: the facts say why.

"Signed" means the document carries a signature field with a value (what a reader shows as signed);
whether the signature is valid is for a signature validator, not for this count. "PDF/A" is the claim in
the document's XMP metadata (`pdfaid:part` and `pdfaid:conformance`), not a conformance check.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from dataclasses import dataclass
from typing import IO, Any

from shared.archive.reading import stream_object
from shared.storage.objects import ObjectStore

log = logging.getLogger(__name__)

SPOOL_MEMORY = 8 * 1024**2
HEADER_WINDOW = 1024  # the PDF format allows the %PDF- header anywhere in the first 1024 bytes
_PART = re.compile(rb"pdfaid:part\s*(?:=\s*[\"']|>)\s*(\d)")
_CONFORMANCE = re.compile(rb"pdfaid:conformance\s*(?:=\s*[\"']|>)\s*([A-Za-z])")


@dataclass(frozen=True)
class Facts:
    sha256: str
    size: int
    is_pdf: bool
    pages: int | None = None
    signed: bool = False
    pdfa: str | None = None
    problem: str | None = None


def spool(store: ObjectStore, key: str, max_bytes: int) -> tuple[IO[bytes], str, int]:
    """(file positioned at 0, sha256, size); the caller closes the file. Raises ObjectMissing."""
    spooled = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 (handed to the caller)
    sha, size = hashlib.sha256(), 0
    try:
        for chunk in stream_object(store, key):
            sha.update(chunk)
            size += len(chunk)
            if size <= max_bytes:
                spooled.write(chunk)
    except BaseException:
        spooled.close()
        raise
    spooled.seek(0)
    return spooled, sha.hexdigest(), size


def read_facts(data: IO[bytes], sha256: str, size: int, max_bytes: int) -> Facts:
    head = data.read(HEADER_WINDOW)
    data.seek(0)
    if b"%PDF-" not in head:
        return Facts(sha256, size, is_pdf=False, problem="no %PDF- header: not a PDF")
    if size > max_bytes:
        return Facts(sha256, size, is_pdf=True, problem=f"{size} bytes: over the inspection limit of {max_bytes}")
    from pypdf import PdfReader

    try:
        reader = PdfReader(data, strict=False)
        if reader.is_encrypted:
            reader.decrypt("")  # documents locked only against editing open with the empty password
        pages = len(reader.pages)
        root = reader.trailer["/Root"].get_object()
        signed = _has_signature(root)
        pdfa = _pdfa_claim(root)
    except Exception as exc:  # pypdf raises many kinds on broken files; each one only flags the file
        return Facts(sha256, size, is_pdf=False, problem=f"not a readable PDF: {type(exc).__name__}: {exc}"[:500])
    return Facts(sha256, size, is_pdf=True, pages=pages, signed=signed, pdfa=pdfa)


def _has_signature(root: Any) -> bool:
    form = root.get("/AcroForm")
    if form is None:
        return False
    fields = list(form.get_object().get("/Fields") or [])
    seen = 0
    while fields and seen < 10_000:  # a loop of /Kids must not hang the worker
        seen += 1
        field = fields.pop().get_object()
        if field.get("/FT") == "/Sig" and field.get("/V") is not None:
            return True
        fields.extend(field.get("/Kids") or [])
    return False


def _pdfa_claim(root: Any) -> str | None:
    metadata = root.get("/Metadata")
    if metadata is None:
        return None
    xmp = metadata.get_object().get_data()
    part = _PART.search(xmp)
    if not part:
        return None
    conformance = _CONFORMANCE.search(xmp)
    return part[1].decode() + (conformance[1].decode().upper() if conformance else "")
