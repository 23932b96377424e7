"""Content types from the first bytes, refined and checked by the file name."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from services.downloader.content_type import DOCX, ODT, OLE2, PPTX, XLSX, ZIP, detect, expected_type, sniff


def office_zip(*names: str, odf_type: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if odf_type:
            archive.writestr(zipfile.ZipInfo("mimetype"), odf_type, compress_type=zipfile.ZIP_STORED)
        for name in names:
            # A fixed date: the bytes (and so the test ids) must not depend on when the test runs.
            entry = zipfile.ZipInfo(name, date_time=(2024, 5, 1, 0, 0, 0))
            archive.writestr(entry, "<xml/>" * 50, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


DOCX_BYTES = office_zip("[Content_Types].xml", "_rels/.rels", "word/document.xml")
XLSX_BYTES = office_zip("[Content_Types].xml", "xl/workbook.xml")
PPTX_BYTES = office_zip("[Content_Types].xml", "_rels/.rels", "ppt/presentation.xml")
ODT_BYTES = office_zip("content.xml", odf_type=ODT)
PLAIN_ZIP = office_zip("a.txt", "b.txt")
OLE2_BYTES = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504


@pytest.mark.parametrize("data, expected", [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
    (b"\r\n\r\n%PDF-1.4 junk before the header", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"GIF89a\x01\x00", "image/gif"),
    (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
    (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
    (DOCX_BYTES, DOCX),
    (XLSX_BYTES, XLSX),
    (PPTX_BYTES, PPTX),
    (ODT_BYTES, ODT),
    (PLAIN_ZIP, ZIP),
    (DOCX_BYTES[:40], ZIP),  # the first entry's name is not even complete: just a ZIP
    (OLE2_BYTES, OLE2),
    (b"{\\rtf1\\ansi\\deff0", "application/rtf"),
    ("Quyết định số 12/QĐ-UBND\r\n".encode(), "text/plain"),
    (b"\xef\xbb\xbf<?xml version='1.0'?><hoso/>", "application/xml"),
    (b"  <!DOCTYPE html><html><body>500</body></html>", "text/html"),
    (b"\x00\x01\x02\x03binary", "application/octet-stream"),
    (bytes(range(256)) * 4, "application/octet-stream"),
])
def test_sniff(data, expected):
    assert sniff(data) == expected


def test_sniff_nothing_is_none():
    assert sniff(b"") is None


def test_a_streamed_zip_without_sizes_stops_at_its_first_entry():
    # Bit 3 set, sizes zero: the next header cannot be located, so a non-office first entry means ZIP.
    header = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0x08, 8, 0, 0, 0, 0, 0, 5, 0) + b"a.txt"
    assert sniff(header + b"\x00" * 100 + b"word/document.xml") == ZIP


@pytest.mark.parametrize("name, expected", [
    ("file_dinh_kem.pdf", "application/pdf"),
    ("SCAN.PDF", "application/pdf"),
    ("Tờ khai.docx", DOCX),
    ("bang tinh.xls", "application/vnd.ms-excel"),
    ("anh.JPEG", "image/jpeg"),
    ("ban ve.dwg", None),
    ("không có đuôi", None),
    (".pdf", None),
    ("", None),
    ("tai_lieu\uff0epdf", "application/pdf"),  # a fullwidth dot is still a dot after NFKC
])
def test_expected_type(name, expected):
    assert expected_type(name) == expected


@pytest.mark.parametrize("data, name, expected", [
    (b"%PDF-1.4", "ketqua.pdf", ("application/pdf", False)),
    (DOCX_BYTES, "to khai.docx", (DOCX, False)),
    (DOCX_BYTES[:40], "to khai.docx", (DOCX, False)),  # a ZIP that may well be a docx: trust the name
    (XLSX_BYTES[:40], "to khai.xlsx", (XLSX, False)),
    (PLAIN_ZIP, "ho so.zip", (ZIP, False)),
    (OLE2_BYTES, "bang.xls", ("application/vnd.ms-excel", False)),
    (OLE2_BYTES, "van ban.doc", ("application/msword", False)),
    (b"a;b;c\n1;2;3\n", "bang.csv", ("text/csv", False)),
    (b"<hoso><ma>1</ma></hoso>", "hoso.xml", ("application/xml", False)),
    (b"%PDF-1.4", "anh.dwg", ("application/pdf", False)),  # the name promises nothing we can check
    (b"%PDF-1.4", "khong duoi", ("application/pdf", False)),
    (b"", "rong.pdf", ("application/pdf", False)),
])
def test_detect_agreeing(data, name, expected):
    assert detect(data, name) == expected


@pytest.mark.parametrize("data, name, sniffed", [
    (b"<!DOCTYPE html><html>Loi 500</html>", "ketqua.pdf", "text/html"),  # an error page named .pdf
    (b"\x89PNG\r\n\x1a\n", "scan.pdf", "image/png"),
    (b"%PDF-1.4", "anh.jpg", "application/pdf"),
    (DOCX_BYTES, "bang.xlsx", DOCX),
    (OLE2_BYTES, "van ban.docx", OLE2),
    (b"\x00\x01\x02garbage", "file.pdf", "application/octet-stream"),
    (b"just text", "scan.tiff", "text/plain"),
])
def test_detect_mismatch_reports_what_the_bytes_are(data, name, sniffed):
    assert detect(data, name) == (sniffed, True)
