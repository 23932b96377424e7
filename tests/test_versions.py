"""Versions never go backwards: an older version of a dossier never replaces a newer one in `ho_so` or
`tai_lieu`, files no longer listed are marked superseded (never deleted), the acker marks only the version
archived; a value the database cannot store is parked at once (`unstorable-value`). Real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy

from harness.pipeline import database_rows, sim_dossiers
from services.acker.handler import AckHandler
from services.indexer.handler import IndexHandler
from shared.broker.outcome import DeadLetter, Delivery, Done, decide
from shared.broker.topology import ACK, INSPECT
from shared.db.engine import make_engine, upgrade
from shared.errors import UnstorableValue
from shared.messages import DossierIndexed, DossierStored, StoredFile
from shared.onestop import OneStopClient

T1 = datetime(2026, 1, 1, 8, tzinfo=UTC)
T2 = T1 + timedelta(minutes=5)


def stored(version: str, at: datetime, keys: list[str], mahoso: str = "M-1", madonvi: str = "U",
           **fields) -> DossierStored:
    files = [StoredFile(matailieu=k, url_file=f"http://h/{k}", object_key=f"U/{mahoso}/{k}", size=1, sha256="0" * 64)
             for k in keys]
    return DossierStored(mahoso=mahoso, madonvi=madonvi, tenthutuc=version, files=files,
                         fetched_at=at, source_hash=version * 8, **fields)


def to_acker(result: Done) -> list:
    """What a Done passes to the acker (the indexer also asks the inspector about each file)."""
    return [message for stage, message in result.publish if stage == ACK]


def deliver(handler, *messages) -> list:
    return handler([Delivery(tag=n, body=m.to_bytes(), headers={}) for n, m in enumerate(messages)])


@pytest.fixture
def engine(pg_url):
    upgrade(pg_url)
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def test_an_older_version_never_replaces_a_newer_one(engine, pg_url):
    index = IndexHandler(engine)
    [first] = deliver(index, stored("v1", T1, ["A", "B"]))
    assert isinstance(first, Done) and first.publish[0][1].fetched_at == T1
    [second] = deliver(index, stored("v2", T2, ["B", "C"]))
    assert isinstance(second, Done) and len(to_acker(second)) == 1
    inspected = sorted(f.object_key for stage, m in second.publish if stage == INSPECT for f in m.files)
    assert inspected == ["U/M-1/B", "U/M-1/C"]
    [late] = deliver(index, stored("v1", T1, ["A", "B"]))  # a redelivery that lost the race
    assert isinstance(late, Done) and late.publish == []  # acknowledged, not passed to the acker
    ho_so, tai_lieu = database_rows(pg_url)
    assert [(r["tenthutuc"], r["source_hash"]) for r in ho_so] == [("v2", "v2" * 8)]
    rows = {r["matailieu"]: r for r in tai_lieu}
    assert sorted(rows) == ["A", "B", "C"]  # nothing deleted
    assert rows["A"]["superseded_at"] is not None and "v2v2v2" in rows["A"]["superseded_reason"]
    assert rows["B"]["superseded_at"] is None and rows["B"]["source_hash"] == "v2" * 8
    assert rows["C"]["superseded_at"] is None
    # Both versions in one batch, the older last: the newer is written, the older goes nowhere.
    results = deliver(index, stored("v3", T2 + timedelta(minutes=1), ["C"], mahoso="M-2"),
                      stored("v2", T2, ["B"], mahoso="M-2"))
    assert [len(to_acker(r)) for r in results] == [1, 0] and results[1].publish == []


def test_files_are_superseded_per_dossier_within_one_batch(engine, pg_url):
    index = IndexHandler(engine)
    deliver(index, stored("a1", T1, ["A", "B"], mahoso="M-A"), stored("b1", T1, ["A", "B"], mahoso="M-B"))
    # One batch: M-A drops B, M-B drops A and adds C. Each dossier's own list decides for its own files.
    deliver(index, stored("a2", T2, ["A"], mahoso="M-A"), stored("b2", T2, ["B", "C"], mahoso="M-B"))
    _, tai_lieu = database_rows(pg_url)
    superseded = {r["object_key"]: r["superseded_reason"] for r in tai_lieu if r["superseded_at"] is not None}
    assert sorted(superseded) == ["U/M-A/B", "U/M-B/A"]
    assert "a2a2a2" in superseded["U/M-A/B"] and "b2b2b2" in superseded["U/M-B/A"]
    assert len(tai_lieu) == 5  # nothing deleted
    # The same batch again changes nothing: the superseded rows keep when and why.
    before = {r["object_key"]: r["superseded_at"] for r in tai_lieu}
    deliver(index, stored("a2", T2, ["A"], mahoso="M-A"), stored("b2", T2, ["B", "C"], mahoso="M-B"))
    assert {r["object_key"]: r["superseded_at"] for r in database_rows(pg_url)[1]} == before


def test_the_acker_marks_only_the_version_archived(engine, pg_url, simulator_factory):
    sim = simulator_factory("--units", "1", "--dossiers", "1")
    [dossier] = sim_dossiers(sim)
    mahoso, unit = dossier["mahoso"], dossier["madonvi"]

    def marks() -> int:
        return next(d["mark_count"] for d in sim_dossiers(sim) if d["mahoso"] == mahoso)

    deliver(IndexHandler(engine), stored("v1", T1, ["A"], mahoso=mahoso, madonvi=unit))
    deliver(IndexHandler(engine), stored("v2", T2, ["B"], mahoso=mahoso, madonvi=unit))
    client = OneStopClient(sim.api_url, "admin_sotaichinh", "1")
    acker = AckHandler(client, engine, 100)
    try:
        old = DossierIndexed(mahoso=mahoso, madonvi=unit, fetched_at=T1, source_hash="v1" * 8)
        assert deliver(acker, old) == [Done()]
        assert marks() == 0
        new = DossierIndexed(mahoso=mahoso, madonvi=unit, fetched_at=T2, source_hash="v2" * 8)
        assert deliver(acker, new) == [Done()]
        assert marks() == 1
        legacy = DossierIndexed(mahoso=mahoso, madonvi=unit)  # queued before versions: marked as before
        assert deliver(acker, legacy) == [Done()] and marks() == 2
    finally:
        client.close()


def test_a_value_the_database_cannot_store_is_parked_at_once(engine, pg_url):
    index = IndexHandler(engine)
    good = stored("v1", T1, ["A"], mahoso="GOOD")
    nul = stored("v1", T1, ["N"], mahoso="NUL").model_copy(update={"tenthutuc": "Cấp\x00phép"})
    long = stored("v1", T1, ["L"], mahoso="L" * 300)
    results = deliver(index, good, nul, long)
    assert isinstance(results[0], Done) and len(to_acker(results[0])) == 1
    for result in results[1:]:
        assert isinstance(result, UnstorableValue)
        decision = decide(Delivery(tag=0, body=b"", headers={}), result, max_attempts=6)
        assert isinstance(decision, DeadLetter) and decision.reason == "unstorable-value"
    with sqlalchemy.create_engine(pg_url).connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT mahoso FROM ho_so")).scalars().all() == ["GOOD"]
