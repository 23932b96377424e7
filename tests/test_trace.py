"""`dongbo trace` against an archive the pipeline filled: every stage of a synced dossier, the dead
letter of a dossier parked by the downloader, both versions of a dossier the vendor changed after it was
marked, and a reader that closes the pipe early."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from harness.services import ROOT, wait_for
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


def test_trace_shows_both_versions_of_a_dossier_changed_after_marking(archive: Archive):
    import requests

    # A dossier with files of two types, so that one type can go and one file stay.
    mahoso = archive.sql("SELECT mahoso FROM tai_lieu GROUP BY mahoso HAVING count(DISTINCT matailieu) = 2 "
                         "AND count(*) = 2 ORDER BY mahoso LIMIT 1")[0]["mahoso"]
    [old] = archive.sql("SELECT * FROM tai_lieu WHERE mahoso = :m ORDER BY matailieu, id LIMIT 1", m=mahoso)
    # The vendor removes one file after the dossier was marked synced. (A change of bytes under the same
    # address would do too, but the fetcher offers a dossier whose listing is unchanged again only after
    # DONGBO_INFLIGHT_TIMEOUT, ten minutes in this harness.)
    requests.post(archive.sim.root + f"/_sim/dossiers/{mahoso}/files", json={"remove": [old["matailieu"]]},
                  timeout=10).raise_for_status()
    wait_for(lambda: archive.sql("SELECT count(*) AS n FROM ho_so_version WHERE mahoso = :m", m=mahoso)[0]["n"] == 2
             and archive.sql("SELECT status FROM sync_state WHERE mahoso = :m", m=mahoso)[0]["status"] == "synced",
             timeout=90, interval=0.5, what="the changed dossier archived as a second version")

    journey = archive.dongbo_json("trace", mahoso, "--no-queues")
    first, second = journey["versions"]
    assert (first["number"], first["current"], second["number"], second["current"]) == (1, False, 2, True)
    assert old["object_key"] in first["object_keys"] and old["object_key"] not in second["object_keys"]
    [gone] = [f for f in first["files"] if f["object_key"] == old["object_key"]]
    assert not gone["current"] and gone["superseded_at"] and gone["superseded_reason"]
    assert all(f["current"] for f in second["files"])
    assert {f["object_key"] for f in second["files"]} == {r["object_key"] for r in archive.sql(
        "SELECT object_key FROM tai_lieu WHERE mahoso = :m AND superseded_at IS NULL", m=mahoso)}
    assert second["fetched_at"] > first["fetched_at"]
    assert {"new version", "superseded"} <= {event["stage"] for event in journey["events"]}
    # The old object stays readable, byte for byte.
    assert hashlib.sha256(archive.object_bytes(old["object_key"])).hexdigest() == old["sha256"]

    code, text, _ = archive.dongbo("trace", mahoso, "--no-queues")
    assert code == 0 and "versions (2):" in text and "(current)" in text
    assert f"{old['object_key']}  [superseded" in text


def test_trace_into_a_closed_pipe_ends_quietly(archive: Archive):
    """`dongbo trace X | head` — the reader is gone before trace writes: no traceback, exit 141."""
    mahoso = archive.sql("SELECT mahoso FROM ho_so ORDER BY mahoso LIMIT 1")[0]["mahoso"]
    read, write = os.pipe()
    os.close(read)  # the reader went away already: the first write fails
    try:
        result = subprocess.run([sys.executable, "-m", "cli.main", "trace", mahoso, "--no-queues"], cwd=ROOT,
                                env={**os.environ, **archive.pipeline.env}, stdout=write, stderr=subprocess.PIPE,
                                text=True, timeout=60)
    finally:
        os.close(write)
    assert result.returncode == 141, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
