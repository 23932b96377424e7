"""The downloader's stored-state recorder: batched writes that never undo a later stage."""

from __future__ import annotations

from harness.services import wait_for
from shared.db.engine import make_engine, upgrade


def test_the_stored_state_is_written_in_batches_and_never_undoes_a_later_stage(tmp_path):
    from services.downloader.progress import StoredRecorder
    from shared.db import sync_state

    url = f"sqlite:///{tmp_path / 'dongbo.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        sync_state.record_published(connection, [(f"M{n}", "U", "h") for n in range(4)])
        sync_state.record_status(connection, ["M3"], sync_state.INDEXED)  # the indexer was quicker
    recorder = StoredRecorder(engine, every=0.2)
    for n in range(4):
        recorder.add(f"M{n}")

    def statuses():
        with engine.begin() as connection:
            return {m: s["status"] for m, s in sync_state.load(connection, [f"M{n}" for n in range(4)]).items()}

    wait_for(lambda: statuses()["M0"] == "stored", timeout=10, what="the batch written")
    assert statuses() == {"M0": "stored", "M1": "stored", "M2": "stored", "M3": "indexed"}


def test_a_dossier_parked_before_its_handoff_is_recorded_stays_parked(pg_url):
    """The fetcher records a chunk once the broker has confirmed it; a downloader may park one of its
    dossiers (a file refused at once) before that. The record must not set it back to queued, or it would
    show as in flight for an hour and then be sent again to be parked again."""
    from shared.db import sync_state

    upgrade(pg_url)
    engine = make_engine(pg_url)
    handed_at = sync_state.now()
    with engine.begin() as connection:  # the downloader parks M1 first: the fetcher has no row for it yet
        sync_state.record_failure(connection, "M1", "U", "forbidden-host", "not allowed", final=True)
    with engine.begin() as connection:
        sync_state.record_published(connection, [("M1", "U", "h"), ("M2", "U", "h")], handed_at)
        states = sync_state.load(connection, ["M1", "M2"])
    assert states["M1"]["status"] == "failed" and states["M1"]["last_reason"] == "forbidden-host"
    assert states["M2"]["status"] == "queued"

    # Handed on again later (a replay, a new version): queued once more.
    with engine.begin() as connection:
        sync_state.record_published(connection, [("M1", "U", "h2")], sync_state.now())
        assert sync_state.load(connection, ["M1"])["M1"]["status"] == "queued"
    engine.dispose()
