"""Which dossiers of a poll are handed on (shared/handoff.py)."""

from datetime import UTC, datetime, timedelta

from shared.handoff import should_publish

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
TIMEOUT = timedelta(hours=1)


def state(status: str, digest: str = "h1", published_minutes_ago: float = 5) -> dict:
    at = NOW - timedelta(minutes=published_minutes_ago)
    return {"status": status, "source_hash": digest, "published_at": at, "updated_at": at}


def test_a_new_dossier_is_handed_on():
    assert should_publish(None, "h1", NOW, TIMEOUT)


def test_a_dossier_in_flight_is_not_handed_on_again_until_it_is_stuck():
    for status in ("queued", "stored", "indexed"):
        assert not should_publish(state(status), "h1", NOW, TIMEOUT)
        assert should_publish(state(status, published_minutes_ago=61), "h1", NOW, TIMEOUT)


def test_a_changed_dossier_is_handed_on_at_once():
    assert should_publish(state("queued"), "h2", NOW, TIMEOUT)
    assert should_publish(state("failed"), "h2", NOW, TIMEOUT)


def test_a_failed_dossier_waits_for_a_change_or_a_replay():
    assert not should_publish(state("failed", published_minutes_ago=600), "h1", NOW, TIMEOUT)


def test_a_synced_dossier_returned_by_the_no_date_call_is_marked_again_but_not_by_a_backfill():
    old = state("synced", published_minutes_ago=120)
    assert should_publish(old, "h1", NOW, TIMEOUT, resend_synced=True)
    assert not should_publish(old, "h1", NOW, TIMEOUT, resend_synced=False)
    assert not should_publish(state("synced"), "h1", NOW, TIMEOUT, resend_synced=True)


def test_naive_timestamps_from_sqlite_are_read_as_utc():
    naive = state("queued", published_minutes_ago=61)
    naive["published_at"] = naive["published_at"].replace(tzinfo=None)
    assert should_publish(naive, "h1", NOW, TIMEOUT)
