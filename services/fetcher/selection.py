"""Which dossiers of a poll go into the pipeline.

The one-stop system returns a dossier on every poll until it is marked synced, so most of what a poll
sees is already on its way. A dossier is handed on when it is new, when its content changed, or when it
has been in flight longer than DONGBO_INFLIGHT_TIMEOUT (a message lost or stuck somewhere). A dossier
that failed for good is not handed on again until the one-stop system sends it changed; an operator
replays it from the dead-letter queue after fixing the cause.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.db.sync_state import FAILED, SYNCED
from shared.messages import dossier_hash
from shared.onestop.models import Dossier


def source_hash(dossier: Dossier) -> str:
    return dossier_hash(dossier)


def should_publish(state: dict | None, digest: str, now: datetime, inflight_timeout: timedelta,
                   resend_synced: bool = True) -> bool:
    """`resend_synced`: the no-date call returned a dossier already marked synced, so the mark did not
    stick and must be sent again; a date-range call returns synced dossiers anyway, so there it is False."""
    if state is None:
        return True
    if state["source_hash"] and state["source_hash"] != digest:
        return True
    if state["status"] == FAILED or (state["status"] == SYNCED and not resend_synced):
        return False
    published_at = state["published_at"] or state["updated_at"]
    if published_at.tzinfo is None:  # SQLite hands back naive UTC datetimes
        published_at = published_at.replace(tzinfo=now.tzinfo)
    return now - published_at > inflight_timeout
