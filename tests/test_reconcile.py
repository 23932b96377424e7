"""`dongbo reconcile` against an archive the pipeline filled: no gap when complete; exactly the gaps made
by deleting a row, deleting an object and changing an object's bytes; `--requeue` closes them."""

from __future__ import annotations

import io

import pytest

from harness.services import wait_for
from tests.archive_support import Archive, filled_archive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(s3_server, rabbit_url):
    with filled_archive(s3_server, rabbit_url, dossiers=10, keep_running=True) as filled:
        yield filled


def test_reconcile_names_exactly_the_gaps_and_requeue_closes_them(archive: Archive):
    complete = archive.dongbo_json("reconcile", *archive.window)
    assert complete["total_gaps"] == 0 and complete["listed"] == complete["in_archive"] == 10
    assert complete["files_checked"] == archive.sql("SELECT count(*) AS n FROM tai_lieu")[0]["n"]
    code, text, _ = archive.dongbo("reconcile", *archive.window)
    assert code == 0 and "no gaps" in text

    a, b, c = (r["mahoso"] for r in archive.sql("SELECT mahoso FROM ho_so ORDER BY mahoso LIMIT 3"))
    archive.sql("DELETE FROM ho_so WHERE mahoso = :m", m=a)  # its tai_lieu rows go with it (cascade)
    deleted = archive.sql("SELECT object_key FROM tai_lieu WHERE mahoso = :m ORDER BY id LIMIT 1", m=b)[0]
    changed = archive.sql("SELECT object_key, size FROM tai_lieu WHERE mahoso = :m ORDER BY id LIMIT 1", m=c)[0]
    client = archive.s3.client()
    client.remove_object(archive.bucket, deleted["object_key"])
    data = bytearray(archive.object_bytes(changed["object_key"]))
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    client.put_object(archive.bucket, changed["object_key"], io.BytesIO(bytes(data)), len(data))

    gaps = archive.dongbo_json("reconcile", *archive.window, expect=1)
    assert gaps["gaps"] == {"missing-dossier": 1, "files-differ": 0, "object-missing": 1, "object-changed": 1}
    found = {(g["kind"], g["mahoso"], g["object_key"]) for g in gaps["details"]}
    assert found == {("missing-dossier", a, None), ("object-missing", b, deleted["object_key"]),
                     ("object-changed", c, changed["object_key"])}
    code, text, _ = archive.dongbo("reconcile", *archive.window)
    assert code == 1 and "3 gaps" in text and deleted["object_key"] in text

    # --rehash reads the bytes too and finds the same gaps.
    assert archive.dongbo_json("reconcile", *archive.window, "--rehash", expect=1)["gaps"] == gaps["gaps"]

    requeued = archive.dongbo_json("reconcile", *archive.window, "--requeue", expect=1)
    assert sorted(requeued["requeued"]) == sorted([a, b, c])

    def closed() -> bool:
        return archive.dongbo("reconcile", *archive.window)[0] == 0

    wait_for(closed, timeout=90, interval=1, what="the pipeline to close the gaps")
    assert archive.object_bytes(changed["object_key"]) != bytes(data)
    # A window with nothing in it has nothing to miss.
    assert archive.dongbo_json("reconcile", "--unit", archive.unit, "--from", "01/01/1990", "--to",
                               "31/12/1990")["listed"] == 0


def test_reconcile_that_cannot_run_exits_2(archive: Archive):
    archive.pipeline.env["DONGBO_S3_BUCKET"], bucket = "no-such-bucket-here", archive.pipeline.env["DONGBO_S3_BUCKET"]
    try:
        code, _, err = archive.dongbo("reconcile", *archive.window)
    finally:
        archive.pipeline.env["DONGBO_S3_BUCKET"] = bucket
    assert code == 2 and "DONGBO_S3_BUCKET" in err
