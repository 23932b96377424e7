"""`dongbo trace` against an archive the pipeline filled: every stage of a synced dossier, and the dead
letter of a dossier parked by the downloader."""

from __future__ import annotations

import pytest

from harness.services import wait_for
from shared.broker.publisher import NEW_DOSSIER_HEADER
from tests.archive_support import Archive, filled_archive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(s3_server, rabbit_url):
    with filled_archive(s3_server, rabbit_url, dossiers=6, keep_running=True) as filled:
        yield filled


def test_trace_shows_every_stage_of_a_synced_dossier(archive: Archive):
    row = archive.sql("SELECT mahoso FROM ho_so ORDER BY mahoso LIMIT 1")[0]
    journey = archive.dongbo_json("trace", row["mahoso"])
    stages = [event["stage"] for event in journey["events"]]
    for stage in ("first seen", "handed on", "fetched", "stored", "indexed", "marked synced"):
        assert stage in stages, f"{stage} missing from {stages}"
    assert stages.index("first seen") < stages.index("handed on") < stages.index("indexed")
    assert stages.index("indexed") < stages.index("marked synced")
    assert journey["status"] == "synced" and journey["dead_letters"] == []
    files = archive.sql("SELECT object_key, size, sha256 FROM tai_lieu WHERE mahoso = :m", m=row["mahoso"])
    assert {(f["object_key"], f["size"], f["sha256"]) for f in journey["files"]} == {
        (f["object_key"], f["size"], f["sha256"]) for f in files}
    assert all(f["stored_at"] for f in journey["files"])

    code, text, _ = archive.dongbo("trace", row["mahoso"])
    assert code == 0
    assert "marked synced" in text and files[0]["sha256"] in text and files[0]["object_key"] in text


def test_trace_names_the_dead_letter_holding_a_parked_dossier(archive: Archive):
    import pika

    from shared.broker.publisher import Publisher
    from shared.broker.topology import DOWNLOAD, Topology
    from shared.messages import DossierFetched
    from shared.onestop.models import Attachment

    # A dossier whose file lives on a host outside DONGBO_ALLOWED_FILE_HOSTS: the downloader parks it.
    parked = DossierFetched(mahoso="PARKED-0001", madonvi=archive.unit, files=[
        Attachment(matailieu="TK01", url_file="http://files.example.net/a.pdf", ten_file="Tờ khai.pdf")])
    topology = Topology(archive.prefix, (0.5, 1.0, 2.0))
    connection = pika.BlockingConnection(pika.URLParameters(archive.pipeline.env["DONGBO_AMQP_URL"]))
    try:
        publisher = Publisher(connection.channel(), topology)
        publisher.publish(topology.queue(DOWNLOAD), parked, {NEW_DOSSIER_HEADER: True})
    finally:
        connection.close()
    wait_for(lambda: archive.sql("SELECT status FROM sync_state WHERE mahoso = 'PARKED-0001'") == [
        {"status": "failed"}], timeout=30, what="the downloader to park the dossier")

    journey = archive.dongbo_json("trace", "PARKED-0001")
    assert journey["status"] == "failed" and journey["last_reason"] == "forbidden-host"
    [letter] = journey["dead_letters"]
    assert letter["dlq"] == topology.dead_letter_queue(DOWNLOAD) and letter["reason"] == "forbidden-host"
    assert "dead-lettered" in [event["stage"] for event in journey["events"]]
    # Peeking took nothing: the dead letter is still there for `dongbo dlq`.
    assert archive.dongbo_json("trace", "PARKED-0001")["dead_letters"] == [letter]
    code, text, _ = archive.dongbo("trace", "PARKED-0001")
    assert code == 0 and f"held now in {topology.dead_letter_queue(DOWNLOAD)}: forbidden-host" in text


def test_trace_of_an_unknown_dossier_exits_1(archive: Archive):
    code, text, _ = archive.dongbo("trace", "NO-SUCH-DOSSIER")
    assert code == 1 and "not known" in text
