"""The inspector against an archive the pipeline filled: `dongbo inspect --pending` queues every file
without facts, the inspector records page counts equal to those of the stored PDFs, sees a signature and
a PDF/A claim, and flags a file that is not a PDF instead of refusing it.

The simulator's own PDFs have one page each; the multi-page, signed and PDF/A files are put into the
simulator (its file-replace call) before the pipeline runs, so they travel the whole pipeline too.
"""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)

from harness.pipeline import sim_dossiers
from harness.services import wait_for
from services.inspector.pdf_facts import read_facts
from shared.archive.inspection import inspection_messages
from shared.broker.topology import INSPECT
from shared.messages import DossierStored, StoredFile
from shared.onestop import OneStopClient
from tests.archive_support import Archive, filled_archive

pytestmark = pytest.mark.slow

XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
       b'xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"><pdfaid:part>2</pdfaid:part>'
       b'<pdfaid:conformance>B</pdfaid:conformance></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def make_pdf(pages: int, signed: bool = False, pdfa: bool = False) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    if signed:
        value = DictionaryObject({NameObject("/Type"): NameObject("/Sig"),
                                  NameObject("/Filter"): NameObject("/Adobe.PPKLite"),
                                  NameObject("/Contents"): ByteStringObject(b"\x00" * 64)})
        field = DictionaryObject({NameObject("/FT"): NameObject("/Sig"), NameObject("/T"): TextStringObject("Ky so"),
                                  NameObject("/V"): writer._add_object(value)})
        writer._root_object[NameObject("/AcroForm")] = DictionaryObject({
            NameObject("/Fields"): ArrayObject([writer._add_object(field)]), NameObject("/SigFlags"): NumberObject(3)})
    if pdfa:
        stream = StreamObject()
        stream.set_data(XMP)
        stream[NameObject("/Type")] = NameObject("/Metadata")
        stream[NameObject("/Subtype")] = NameObject("/XML")
        writer._root_object[NameObject("/Metadata")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


SPECIAL = {
    "Hồ sơ ba trang.pdf": make_pdf(3),
    "Quyết định đã ký số.pdf": make_pdf(2, signed=True, pdfa=True),
    "Không phải PDF.pdf": "Đây là văn bản, không phải PDF.\n".encode() * 50,
}


def put_special_files(sim, unit: str) -> None:
    dossiers = sim_dossiers(sim)
    with OneStopClient(sim.api_url, "admin_sotaichinh", "1") as client:
        for dossier, (name, content) in zip(dossiers, SPECIAL.items(), strict=False):
            client.replace_file(unit, dossier["mahoso"], dossier["files"][0]["matailieu"], name, content)


@pytest.fixture(scope="module")
def archive(s3_server, rabbit_url):
    with filled_archive(s3_server, rabbit_url, dossiers=6, prepare=put_special_files) as filled:
        yield filled


def test_page_counts_and_facts_of_every_stored_file(archive: Archive):
    rows = archive.sql("SELECT mahoso, object_key, ten_file, sha256 FROM tai_lieu")
    assert {name for name in SPECIAL} <= {r["ten_file"] for r in rows}, "the pipeline did not store the test files"
    code, text, _ = archive.dongbo("inspect", "--pending")
    assert code == 0 and text.strip() == f"queued {len(rows)} files for inspection"
    inspector = archive.pipeline.start("inspector")
    try:
        wait_for(lambda: archive.sql("SELECT count(*) AS n FROM pdf_facts")[0]["n"] == len(rows), timeout=60,
                 what="facts about every file")
    finally:
        inspector.terminate()
    facts = {r["object_key"]: r for r in archive.sql("SELECT * FROM pdf_facts")}
    for row in rows:
        fact = facts[row["object_key"]]
        assert fact["sha256"] == row["sha256"]
        data = archive.object_bytes(row["object_key"])
        if row["ten_file"] == "Không phải PDF.pdf":
            assert not fact["is_pdf"] and fact["pages"] is None and "not a PDF" in fact["problem"]
            continue
        assert fact["is_pdf"] and fact["problem"] is None
        assert fact["pages"] == len(PdfReader(io.BytesIO(data)).pages)
    by_name = {r["ten_file"]: facts[r["object_key"]] for r in rows}
    assert by_name["Hồ sơ ba trang.pdf"]["pages"] == 3 and not by_name["Hồ sơ ba trang.pdf"]["signed"]
    signed = by_name["Quyết định đã ký số.pdf"]
    assert (signed["pages"], signed["signed"], signed["pdfa"]) == (2, True, "2B")
    # Nothing is pending any more; the facts show in the dossier's trace.
    assert archive.dongbo("inspect", "--pending")[1].strip() == "queued 0 files for inspection"
    mahoso = next(r["mahoso"] for r in rows if r["ten_file"] == "Hồ sơ ba trang.pdf")
    traced = archive.dongbo_json("trace", mahoso, "--no-queues")
    assert 3 in [f["pdf"]["pages"] for f in traced["files"]]


def test_facts_of_broken_and_truncated_files():
    whole = make_pdf(4)
    assert read_facts(io.BytesIO(whole), "x", len(whole), 10**6).pages == 4
    broken = read_facts(io.BytesIO(whole[:60]), "x", 60, 10**6)
    assert not broken.is_pdf and broken.problem
    too_big = read_facts(io.BytesIO(whole), "x", len(whole), 100)
    assert too_big.is_pdf and too_big.pages is None and "over the inspection limit" in too_big.problem


def test_the_indexer_asks_for_one_inspection_per_stored_file():
    sha = "a" * 64
    files = [StoredFile(matailieu="TK", url_file="http://x/1", object_key=f"u/m/TK/{n}", size=1, sha256=sha)
             for n in (1, 2, 2)]
    messages = inspection_messages(DossierStored(mahoso="M", madonvi="U", files=files))
    assert [(stage, m.object_key) for stage, m in messages] == [(INSPECT, "u/m/TK/1"), (INSPECT, "u/m/TK/2")]
