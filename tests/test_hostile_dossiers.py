"""Hostile dossiers against the real pipeline: each is parked with its reason, never marked synced, and
the poll goes on; a replay validates again; each reason's documented recovery works
(docs/deployment.md, "Dossiers"). The simulator serves every bad dossier (services/onestop_sim/poison.py)."""

from __future__ import annotations

import json
import time

import requests
import sqlalchemy

from harness.pipeline import Pipeline, database_rows, expected_dossiers, sim_dossiers
from harness.queues import messages
from harness.services import wait_for
from services.onestop_sim.poison import REASONS
from shared.broker.outcome import REASON_HEADER
from shared.broker.publisher import MAHOSO_HEADER
from shared.broker.topology import DOWNLOAD, Topology

DELAYS = (0.5, 1.0, 2.0)


def shown(mahoso: str) -> str:
    """A code as dongbo names it in a header or the sync state: a NUL written out."""
    return mahoso.replace("\x00", "\\x00")


def marks(sim) -> dict[str, int]:
    return {d["mahoso"]: d["mark_count"] for d in sim_dossiers(sim)}


def poisoned(sim) -> dict[str, str]:
    return {d["mahoso"]: d["poison"] for d in sim_dossiers(sim) if d["poison"]}


def sync_calls(sim, unit: str) -> int:
    return requests.get(sim.root + "/_sim/stats", timeout=10).json()["sync_calls_by_unit"].get(unit, 0)


def pipeline_for(sim, rabbit_url, pg_url, s3_server, bucket, queue_prefix, **env) -> Pipeline:
    units = sorted({d["madonvi"] for d in sim_dossiers(sim)})
    pipeline = Pipeline.configure(sim=sim, units=units, rabbit_url=rabbit_url, pg_url=pg_url, s3=s3_server,
                                  bucket=bucket, queue_prefix=queue_prefix, **env)
    pipeline.dongbo("db", "upgrade")
    return pipeline



def reasons(rabbit_url: str, queue: str) -> dict[str, str]:
    return {str(h.get(MAHOSO_HEADER)): str(h.get(REASON_HEADER)) for h, _ in messages(rabbit_url, queue)}


def sync_states(pg_url: str) -> dict[str, dict]:
    engine = sqlalchemy.create_engine(pg_url)
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text("SELECT * FROM sync_state")).mappings()
        states = {row["mahoso"]: dict(row) for row in rows}
    engine.dispose()
    return states


def test_poisoned_dossiers_are_parked_each_with_its_reason_and_the_poll_goes_on(
    simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    kinds = "nul-mahoso,nul-madonvi,deep,long-field,item-too-large,control-chars,huge-field,too-many-files"
    sim = simulator_factory("--seed", "3", "--units", "2", "--dossiers", "4", "--file-size", "2000-8000",
                            "--poison", "8", "--poison-kinds", kinds, "--poison-item-bytes", "30000",
                            "--poison-files", "501")
    good = sorted(d["mahoso"] for d in expected_dossiers(sim))
    bad = poisoned(sim)
    expected = {shown(m): REASONS[kind] for m, kind in bad.items()}
    units = sorted({d["madonvi"] for d in sim_dossiers(sim)})
    pipeline = pipeline_for(sim, rabbit_url, pg_url, s3_server, bucket, queue_prefix, DONGBO_MAX_ITEM_BYTES="20000")
    dlq = Topology(queue_prefix, DELAYS).dead_letter_queue(DOWNLOAD)
    started = time.monotonic()
    pipeline.start_all(downloaders=1)
    try:
        wait_for(lambda: all(marks(sim)[m] for m in good), timeout=90, interval=0.5, what="good dossiers synced")
        wait_for(lambda: len(messages(rabbit_url, dlq)) >= len(expected), timeout=30, interval=0.5,
                 what="poisoned dossiers parked")
        polls = sync_calls(sim, units[0])
        wait_for(lambda: sync_calls(sim, units[0]) >= polls + 2, timeout=30, interval=0.2, what="two more polls")
        elapsed = time.monotonic() - started
    finally:
        pipeline.stop_all()
        print(reasons(rabbit_url, dlq))
        errors = [line for line in pipeline.logs_whole().splitlines() if '"level": "error"' in line]
        print("\n".join(errors)[-6000:])
    assert reasons(rabbit_url, dlq) == expected  # each once: a later poll does not park it again
    now = marks(sim)
    assert not any(now[m] for m in bad)
    assert all(now[m] == 1 for m in good)
    # Polled every DONGBO_POLL_INTERVAL (2 s), not in a loop.
    assert sync_calls(sim, units[0]) <= elapsed / 2 + 3 and sync_calls(sim, units[1]) >= 2
    ho_so, tai_lieu = database_rows(pg_url)
    assert sorted(row["mahoso"] for row in ho_so) == good
    assert sorted({row["mahoso"] for row in tai_lieu}) == good
    states = sync_states(pg_url)
    assert {m: states[m]["status"] for m in expected} == dict.fromkeys(expected, "failed")
    assert {m: states[m]["last_reason"] for m in expected} == expected
    assert all(states[m]["status"] == "synced" for m in good)
    for headers, body in messages(rabbit_url, dlq):
        # A bounded copy (strings cut at 1 MiB as the answer is read) or a summary, never the 20 MB item.
        assert len(body) < 2_000_000, headers
        json.loads(body)


def test_replay_validates_again_and_each_documented_recovery_works(
    simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    sim = simulator_factory("--seed", "4", "--units", "1", "--dossiers", "1", "--file-size", "2000-8000",
                            "--poison", "5", "--poison-kinds", "long-field,item-too-large,too-many-files,deep,"
                            "control-chars", "--poison-item-bytes", "8000", "--poison-files", "3")
    [good] = [d["mahoso"] for d in expected_dossiers(sim)]
    bad = poisoned(sim)
    by_kind = {kind: m for m, kind in bad.items()}
    expected = {m: REASONS[kind] for m, kind in bad.items()}
    pipeline = pipeline_for(sim, rabbit_url, pg_url, s3_server, bucket, queue_prefix,
                            DONGBO_MAX_ITEM_BYTES="6000", DONGBO_MAX_FILES_PER_DOSSIER="2")
    topology = Topology(queue_prefix, DELAYS)
    dlq = topology.dead_letter_queue(DOWNLOAD)
    pipeline.dongbo("fetcher", "--once")
    assert reasons(rabbit_url, dlq) == expected
    for name in ("downloader", "indexer", "acker"):
        pipeline.start(name)
    try:
        wait_for(lambda: marks(sim)[good], timeout=60, interval=0.5, what="the good dossier synced")
        # A replay with nothing fixed: each goes back with its reason; nothing reaches the download queue.
        pipeline.dongbo("dlq", "replay")
        assert reasons(rabbit_url, dlq) == expected
        time.sleep(1)  # what a wrongly replayed item would need to be indexed and marked (nothing must be)
        assert [m for m in expected if marks(sim)[m]] == []

        # field-too-long / dossier-too-large / too-many-files: raise the limit, restart, replay that reason.
        pipeline.env.update(DONGBO_MAX_FIELD_CHARS="10000", DONGBO_MAX_ITEM_BYTES="100000",
                            DONGBO_MAX_FILES_PER_DOSSIER="5")
        pipeline.stop_all()
        for name in ("downloader", "indexer", "acker"):
            pipeline.start(name)
        for kind in ("long-field", "item-too-large", "too-many-files"):
            pipeline.dongbo("dlq", "replay", "--reason", REASONS[kind])
            wait_for(lambda m=by_kind[kind]: marks(sim)[m], timeout=60, interval=0.5, what=f"{kind} synced")
        # malformed-dossier: fixed at the source, the next poll hands the new version on; then purge.
        for kind in ("deep", "control-chars"):
            requests.post(f"{sim.root}/_sim/dossiers/{by_kind[kind]}/poison", json={"kind": None},
                          timeout=10).raise_for_status()
        pipeline.dongbo("fetcher", "--once")
        wait_for(lambda: marks(sim)[by_kind["deep"]] and marks(sim)[by_kind["control-chars"]], timeout=60,
                 interval=0.5, what="the corrected dossiers synced")
        pipeline.dongbo("dlq", "purge", "--reason", "malformed-dossier", "--yes")
        assert reasons(rabbit_url, dlq) == {}
    finally:
        pipeline.stop_all()
    ho_so, tai_lieu = database_rows(pg_url)
    assert sorted(row["mahoso"] for row in ho_so) == sorted([good, *expected])
    listing = {d["mahoso"]: d for d in sim_dossiers(sim)}
    files = {m: sum(1 for row in tai_lieu if row["mahoso"] == m) for m in [good, *expected]}
    assert files == {m: len(listing[m]["files"]) for m in files}
    assert files[by_kind["too-many-files"]] == 3
    assert all(listing[m]["mark_count"] == 1 for m in files)


def test_a_replayed_summary_keeps_its_reason(simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix):
    # Over 12 MiB: only a summary of it is parked, which must still carry its reason through a replay.
    sim = simulator_factory("--units", "1", "--dossiers", "0", "--poison", "1", "--poison-kinds", "item-too-large",
                            "--poison-item-bytes", str(14 * 1024**2))
    pipeline = pipeline_for(sim, rabbit_url, pg_url, s3_server, bucket, queue_prefix)
    dlq = Topology(queue_prefix, DELAYS).dead_letter_queue(DOWNLOAD)
    pipeline.dongbo("fetcher", "--once")
    expected = {m: "dossier-too-large" for m in poisoned(sim)}
    assert reasons(rabbit_url, dlq) == expected
    pipeline.dongbo("dlq", "replay")
    assert reasons(rabbit_url, dlq) == expected
