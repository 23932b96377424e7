"""The content type of a file, judged by its first bytes, and whether that agrees with its name.

The one-stop system's own Content-Type header is not trusted (file servers often say octet-stream or
text/html for everything), and a file name can lie: an HTML error page served as `ketqua.pdf` must be
flagged, not archived silently as a PDF. So the bytes decide the type and the name only refines it where
the bytes cannot tell (a ZIP whose first entries are not visible, an OLE2 file that is .doc or .xls).
"""

from __future__ import annotations

import struct
import unicodedata

OCTET_STREAM = "application/octet-stream"
PDF = "application/pdf"
ZIP = "application/zip"
OLE2 = "application/x-ole-storage"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"
TEXT = "text/plain"
XML = "application/xml"
HTML = "text/html"

# Only types the sniffer can recognize: for any other extension the bytes cannot contradict the name.
BY_EXTENSION = {
    "pdf": PDF,
    "png": "image/png",
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "jpe": "image/jpeg", "jfif": "image/jpeg",
    "gif": "image/gif",
    "tif": "image/tiff", "tiff": "image/tiff",
    "docx": DOCX, "xlsx": XLSX, "pptx": PPTX,
    "odt": ODT, "ods": ODS, "odp": ODP,
    "zip": ZIP,
    "doc": "application/msword", "xls": "application/vnd.ms-excel", "ppt": "application/vnd.ms-powerpoint",
    "rtf": "application/rtf",
    "txt": TEXT, "csv": "text/csv", "xml": XML, "json": "application/json",
    "htm": HTML, "html": HTML,
}

# Sniffed type → the named types it is consistent with (the name is then the more precise one).
_CONTAINS = {
    ZIP: {DOCX, XLSX, PPTX, ODT, ODS, ODP, ZIP},
    OLE2: {"application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint"},
    TEXT: {TEXT, "text/csv", XML, "application/json"},
    XML: {XML, TEXT},
}

_ZIP_PREFIXES = (("word/", DOCX), ("xl/", XLSX), ("ppt/", PPTX))
_ODF = {ODT.encode(): ODT, ODS.encode(): ODS, ODP.encode(): ODP}
_CONTROL = frozenset(set(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D, 0x1B}) | {0x7F}


def detect(first_bytes: bytes, ten_file: str) -> tuple[str, bool]:
    """(content type, mismatch): the type of the bytes, and whether the file name said otherwise."""
    expected = expected_type(ten_file)
    sniffed = sniff(first_bytes)
    if sniffed is None:  # an empty file: nothing contradicts its name
        return expected or OCTET_STREAM, False
    if expected is None:
        return sniffed, False
    if sniffed == expected:
        return sniffed, False
    if expected in _CONTAINS.get(sniffed, ()):
        return expected, False
    return sniffed, True


def expected_type(ten_file: str) -> str | None:
    """The type a file name's extension promises, or None when the name tells nothing we can check."""
    name = unicodedata.normalize("NFKC", ten_file or "").strip()
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return None
    return BY_EXTENSION.get(extension.lower())


def sniff(data: bytes) -> str | None:
    """The type of a file from its first bytes (a few KiB are plenty); None for no bytes at all."""
    if not data:
        return None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(data)
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return OLE2
    if data.startswith(b"{\\rtf"):
        return "application/rtf"
    # Readers accept a PDF header anywhere in the first 1024 bytes (some generators prepend junk).
    if b"%PDF-" in data[:1024]:
        return PDF
    return _text_kind(data)


def _zip_kind(data: bytes) -> str:
    """Office formats are ZIPs; the names of the entries visible in the first bytes tell which one."""
    offset = 0
    while data.startswith(b"PK\x03\x04", offset) and offset + 30 <= len(data):
        flags, method, compressed, name_len, extra_len = (
            struct.unpack_from("<H", data, offset + 6)[0],
            struct.unpack_from("<H", data, offset + 8)[0],
            struct.unpack_from("<I", data, offset + 18)[0],
            *struct.unpack_from("<HH", data, offset + 26),
        )
        name = data[offset + 30: offset + 30 + name_len]
        body = offset + 30 + name_len + extra_len
        for prefix, kind in _ZIP_PREFIXES:
            if name.startswith(prefix.encode()):
                return kind
        if name == b"mimetype" and method == 0:  # ODF stores its type first, uncompressed
            odf = _ODF.get(bytes(data[body: body + compressed]).strip())
            if odf:
                return odf
        if flags & 0x08:  # sizes follow the data (a streamed ZIP): the next header cannot be found
            break
        offset = body + compressed
    return ZIP


def _text_kind(data: bytes) -> str:
    """Text when the bytes hold no NUL and next to no control characters; XML and HTML by their start."""
    sample = data[:8192]
    if b"\x00" in sample:
        return OCTET_STREAM
    controls = sum(1 for byte in sample if byte in _CONTROL)
    if controls > len(sample) // 100:
        return OCTET_STREAM
    head = sample[:512].lstrip(b"\xef\xbb\xbf").lstrip().lower()
    if head.startswith(b"<?xml"):
        return XML
    if head.startswith((b"<!doctype html", b"<html")):
        return HTML
    return TEXT
