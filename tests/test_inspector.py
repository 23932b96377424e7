"""The inspector against an archive the pipeline filled: `dongbo inspect --pending` queues every file
without facts, the inspector records page counts equal to those of the stored PDFs, sees a signature and
a PDF/A claim, and flags a file that is not a PDF instead of refusing it.

The simulator's own PDFs have one page each; the multi-page, signed and PDF/A files are put into the
simulator (its file-replace call) before the pipeline runs, so they travel the whole pipeline too.
"""

from __future__ import annotations

import hashlib
import io
import json

import pytest
import sqlalchemy
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
from services.inspector.handler import InspectHandler
from services.inspector.pdf_facts import read_facts
from shared.archive.inspection import (
    FILES_PER_MESSAGE,
    FileRef,
    FilesToInspect,
    StoredObjectMissing,
    inspection_messages,
)
from shared.broker.outcome import Delivery
from shared.broker.topology import INSPECT
from shared.errors import PoisonMessage, reason_of
from shared.messages import DossierStored, StoredFile
from shared.onestop import OneStopClient
from shared.storage import ObjectStore
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


def test_the_indexer_asks_for_one_inspection_per_dossier_naming_each_stored_file_once():
    sha = "a" * 64
    files = [StoredFile(matailieu="TK", url_file="http://x/1", object_key=f"u/m/TK/{n}", size=1, sha256=sha)
             for n in (1, 2, 2)]
    messages = inspection_messages(DossierStored(mahoso="M", madonvi="U", files=files))
    assert [(stage, [f.object_key for f in m.files]) for stage, m in messages] == [(INSPECT, ["u/m/TK/1", "u/m/TK/2"])]
    assert inspection_messages(DossierStored(mahoso="M", madonvi="U", files=[])) == []
    # More files than one message may name: several messages, every file in exactly one.
    many = [StoredFile(matailieu="TK", url_file="http://x/1", object_key=f"k/{n}", size=1, sha256=sha)
            for n in range(FILES_PER_MESSAGE + 3)]
    chunks = [m.files for _, m in inspection_messages(DossierStored(mahoso="M", madonvi="U", files=many))]
    assert [len(c) for c in chunks] == [FILES_PER_MESSAGE, 3]


def test_a_message_queued_in_the_one_file_shape_is_read_as_a_list_of_one():
    old = {"schema_version": 1, "mahoso": "M", "madonvi": "U", "object_key": "u/m/TK/1", "sha256": "b" * 64,
           "size": 7, "matailieu": "TK"}
    message = FilesToInspect.from_bytes(json.dumps(old).encode())
    assert [(f.object_key, f.sha256, f.size, f.matailieu) for f in message.files] == [("u/m/TK/1", "b" * 64, 7, "TK")]
    with pytest.raises(PoisonMessage):
        FilesToInspect.from_bytes(json.dumps({"mahoso": "M", "madonvi": "U", "files": []}).encode())


def test_a_missing_object_parks_the_message_but_its_neighbours_get_their_facts(archive: Archive, s3_server, bucket):
    """Read against another bucket: one file is there, one has a `tai_lieu` row but no object, one neither."""
    pdf = make_pdf(5)
    store = ObjectStore(s3_server.client(), bucket)
    store.put_whole("inspect-test/present.pdf", pdf, "application/pdf")
    row = archive.sql("SELECT object_key FROM tai_lieu ORDER BY id LIMIT 1")[0]
    refs = [FileRef(object_key="inspect-test/present.pdf", sha256=hashlib.sha256(pdf).hexdigest(), size=len(pdf)),
            FileRef(object_key=row["object_key"], sha256="c" * 64, size=1),
            FileRef(object_key="inspect-test/never-archived.pdf", sha256="d" * 64, size=1)]
    body = FilesToInspect(mahoso="M-INSPECT", madonvi=archive.unit, files=refs).to_bytes()
    engine = sqlalchemy.create_engine(archive.pg_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        handler = InspectHandler(engine, store, max_bytes=10**7)
        with pytest.raises(StoredObjectMissing, match=row["object_key"]) as raised:
            handler(Delivery(tag=1, body=body, headers={}, redelivered=False, attempt=0))
        assert reason_of(raised.value) == "object-missing"
        facts = archive.sql("SELECT object_key, pages FROM pdf_facts WHERE mahoso = 'M-INSPECT'")
        assert facts == [{"object_key": "inspect-test/present.pdf", "pages": 5}]
    finally:
        archive.sql("DELETE FROM pdf_facts WHERE mahoso = 'M-INSPECT'")
        engine.dispose()
