"""Hostile dossiers against the real pipeline: each is parked with its reason, never marked synced, and
the poll goes on; a replay validates again; each reason's documented recovery works
(docs/deployment.md, "Dossiers")."""

from __future__ import annotations

import json
import time

import pika
import pytest
import sqlalchemy

from harness.pipeline import Pipeline, database_rows
from harness.services import wait_for
from shared.broker.outcome import REASON_HEADER
from shared.broker.publisher import MAHOSO_HEADER
from shared.broker.topology import DOWNLOAD, Topology
from tests.onestop_standin import StandIn

DELAYS = (0.5, 1.0, 2.0)
# Two units with codes of the documented shape (the fetcher refuses any other at start).
U1, U2 = "000.00.01.H55", "000.00.02.H55"


@pytest.fixture
def standin():
    server = StandIn()
    yield server
    server.stop()


def dossier(standin: StandIn, unit: str, mahoso: str, files: int = 1, **fields) -> dict:
    item = {"mahoso": mahoso, "madonvi": unit, "tentochuccanhan": "CÔNG TY TNHH AN BÌNH", "ngaynhan": "19/10/2020",
            "mathutuc": "1.005434.000.00.00.H55", "tenthutuc": "Cấp giấy phép",
            "file_dinh_kem": [{"matailieu": f"KQ{n}", "tentailieu": "Kết quả", "ten_file": f"{mahoso}-{n}.pdf",
                               "url_file": standin.file_url(f"{mahoso}-{n}.pdf", f"%PDF {mahoso} {n}".encode())}
                              for n in range(files)]}
    item.update(fields)
    return item


def pipeline_for(standin, rabbit_url, pg_url, s3_server, bucket, queue_prefix, units, **env) -> Pipeline:
    pipeline = Pipeline.configure(sim=standin, units=units, rabbit_url=rabbit_url, pg_url=pg_url, s3=s3_server,
                                  bucket=bucket, queue_prefix=queue_prefix, **env)
    pipeline.dongbo("db", "upgrade")
    return pipeline


def dead_letters(rabbit_url: str, queue: str) -> list[tuple[dict, bytes]]:
    """Every message of a queue, left in place (taken unacknowledged, then the channel closes)."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbit_url))
    channel = connection.channel()
    taken = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        taken.append((props.headers or {}, body))
    connection.close()
    return taken


def reasons(rabbit_url: str, queue: str) -> dict[str, str]:
    return {str(h.get(MAHOSO_HEADER)): str(h.get(REASON_HEADER)) for h, _ in dead_letters(rabbit_url, queue)}


def sync_states(pg_url: str) -> dict[str, dict]:
    engine = sqlalchemy.create_engine(pg_url)
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text("SELECT * FROM sync_state")).mappings()
        states = {row["mahoso"]: dict(row) for row in rows}
    engine.dispose()
    return states


def deep_item(mahoso: str, levels: int) -> str:
    return json.dumps({"mahoso": mahoso, "madonvi": U1})[:-1] + ', "x": ' + "[" * levels + "]" * levels + "}"


def test_poisoned_dossiers_are_parked_each_with_its_reason_and_the_poll_goes_on(
    standin, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    good = ["U1-GOOD-1", "U1-GOOD-2", "U2-GOOD-3"]
    standin.add(U1, "U1-GOOD-1", dossier(standin, U1, "U1-GOOD-1"))
    standin.add(U1, "U1-NUL\x00-1", dossier(standin, U1, "U1-NUL\x00-1"))
    standin.add(U1, "U1-NUL-UNIT", dossier(standin, U1, "U1-NUL-UNIT", madonvi=U1 + "\x00"))
    standin.add(U1, "U1-DEEP", deep_item("U1-DEEP", 5000))
    standin.add(U1, "U1-LONG", dossier(standin, U1, "U1-LONG", tentochuccanhan="A" * 50_000))
    standin.add(U1, "U1-LARGE", dossier(standin, U1, "U1-LARGE", files=300))
    standin.add(U1, "U1-NUL-TEXT", dossier(standin, U1, "U1-NUL-TEXT", tenthutuc="Cấp\x00phép"))
    tab = dossier(standin, U1, "U1-TAB-CODE")
    tab["file_dinh_kem"][0]["matailieu"] = "KQ\t1"
    standin.add(U1, "U1-TAB-CODE", tab)
    standin.add(U1, "U1-GOOD-2", dossier(standin, U1, "U1-GOOD-2"))
    standin.add(U2, "U2-HUGE", dossier(standin, U2, "U2-HUGE", tenthutuc="x" * 20_000_000))
    standin.add(U2, "U2-GOOD-3", dossier(standin, U2, "U2-GOOD-3"))
    expected = {"U1-NUL\\x00-1": "malformed-dossier", "U1-NUL-UNIT": "malformed-dossier",
                "U1-DEEP": "malformed-dossier", "U1-LONG": "field-too-long", "U1-LARGE": "dossier-too-large",
                "U1-NUL-TEXT": "malformed-dossier", "U1-TAB-CODE": "malformed-dossier",
                "U2-HUGE": "dossier-too-large"}
    pipeline = pipeline_for(standin, rabbit_url, pg_url, s3_server, bucket, queue_prefix, [U1, U2],
                            DONGBO_MAX_ITEM_BYTES="20000")
    dlq = Topology(queue_prefix, DELAYS).dead_letter_queue(DOWNLOAD)
    started = time.monotonic()
    pipeline.start_all(downloaders=1)
    try:
        wait_for(lambda: all(standin.marked[m] for m in good), timeout=90, interval=0.5, what="good dossiers synced")
        wait_for(lambda: len(dead_letters(rabbit_url, dlq)) >= len(expected), timeout=30, interval=0.5,
                 what="poisoned dossiers parked")
        polls = standin.sync_calls[U1]
        wait_for(lambda: standin.sync_calls[U1] >= polls + 2, timeout=30, interval=0.2, what="two more polls")
        elapsed = time.monotonic() - started
    finally:
        pipeline.stop_all()
        print(reasons(rabbit_url, dlq))
        errors = [line for line in pipeline.logs_whole().splitlines() if '"level": "error"' in line]
        print("\n".join(errors)[-6000:])
    assert reasons(rabbit_url, dlq) == expected  # each once: a later poll does not park it again
    assert not any(standin.marked[key] for key in standin.marked if key not in good)
    assert all(standin.marked[m] == 1 for m in good)
    # Polled every DONGBO_POLL_INTERVAL (2 s), not in a loop.
    assert standin.sync_calls[U1] <= elapsed / 2 + 3 and standin.sync_calls[U2] >= 2
    ho_so, tai_lieu = database_rows(pg_url)
    assert sorted(row["mahoso"] for row in ho_so) == good
    assert sorted(row["mahoso"] for row in tai_lieu) == good
    states = sync_states(pg_url)
    assert {m: states[m]["status"] for m in expected} == dict.fromkeys(expected, "failed")
    assert {m: states[m]["last_reason"] for m in expected} == expected
    assert all(states[m]["status"] == "synced" for m in good)
    for headers, body in dead_letters(rabbit_url, dlq):
        assert len(body) < 1_000_000, headers  # a bounded copy or summary, never the 20 MB item
        json.loads(body)


def test_replay_validates_again_and_each_documented_recovery_works(
    standin, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    standin.add(U1, "U1-GOOD", dossier(standin, U1, "U1-GOOD"))
    standin.add(U1, "U1-LONG", dossier(standin, U1, "U1-LONG", tentochuccanhan="A" * 5000))
    standin.add(U1, "U1-LARGE", dossier(standin, U1, "U1-LARGE", tentochuccanhan="B" * 3900,
                                          tenthutuc="C" * 3900))
    standin.add(U1, "U1-MANY", dossier(standin, U1, "U1-MANY", files=3))
    standin.add(U1, "U1-NUL", dossier(standin, U1, "U1-NUL", tenthutuc="Cấp\x00phép"))
    standin.add(U1, "U1-DEEP", deep_item("U1-DEEP", 3000))
    expected = {"U1-LONG": "field-too-long", "U1-LARGE": "dossier-too-large", "U1-MANY": "too-many-files",
                "U1-NUL": "malformed-dossier", "U1-DEEP": "malformed-dossier"}
    pipeline = pipeline_for(standin, rabbit_url, pg_url, s3_server, bucket, queue_prefix, [U1],
                            DONGBO_MAX_ITEM_BYTES="6000", DONGBO_MAX_FILES_PER_DOSSIER="2")
    topology = Topology(queue_prefix, DELAYS)
    dlq = topology.dead_letter_queue(DOWNLOAD)
    pipeline.dongbo("fetcher", "--once")
    assert reasons(rabbit_url, dlq) == expected
    for name in ("downloader", "indexer", "acker"):
        pipeline.start(name)
    try:
        wait_for(lambda: standin.marked["U1-GOOD"], timeout=60, interval=0.5, what="the good dossier synced")
        # A replay with nothing fixed: each goes back with its reason; nothing reaches the download queue.
        pipeline.dongbo("dlq", "replay")
        assert reasons(rabbit_url, dlq) == expected
        time.sleep(1)  # what a wrongly replayed item would need to be indexed and marked (nothing must be)
        assert [m for m in expected if standin.marked[m]] == []

        # field-too-long / dossier-too-large / too-many-files: raise the limit, restart, replay that reason.
        pipeline.env.update(DONGBO_MAX_FIELD_CHARS="10000", DONGBO_MAX_ITEM_BYTES="100000",
                            DONGBO_MAX_FILES_PER_DOSSIER="5")
        pipeline.stop_all()
        for name in ("downloader", "indexer", "acker"):
            pipeline.start(name)
        for reason, mahoso in (("field-too-long", "U1-LONG"), ("dossier-too-large", "U1-LARGE"),
                               ("too-many-files", "U1-MANY")):
            pipeline.dongbo("dlq", "replay", "--reason", reason)
            wait_for(lambda m=mahoso: standin.marked[m], timeout=60, interval=0.5, what=f"{mahoso} synced")
        # malformed-dossier: fixed at the source, the next poll hands the new version on; then purge.
        standin.add(U1, "U1-NUL", dossier(standin, U1, "U1-NUL", tenthutuc="Cấp phép"))
        standin.add(U1, "U1-DEEP", dossier(standin, U1, "U1-DEEP"))
        pipeline.dongbo("fetcher", "--once")
        wait_for(lambda: standin.marked["U1-NUL"] and standin.marked["U1-DEEP"], timeout=60, interval=0.5,
                 what="the corrected dossiers synced")
        pipeline.dongbo("dlq", "purge", "--reason", "malformed-dossier", "--yes")
        assert reasons(rabbit_url, dlq) == {}
    finally:
        pipeline.stop_all()
    ho_so, tai_lieu = database_rows(pg_url)
    assert sorted(row["mahoso"] for row in ho_so) == sorted(["U1-GOOD", *expected])
    files = {m: sum(1 for row in tai_lieu if row["mahoso"] == m) for m in ["U1-GOOD", *expected]}
    assert files == {"U1-GOOD": 1, "U1-LONG": 1, "U1-LARGE": 1, "U1-MANY": 3, "U1-NUL": 1, "U1-DEEP": 1}
    assert all(standin.marked[m] == 1 for m in files)
