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
