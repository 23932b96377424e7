"""The delivery decision (shared/broker/outcome.py): retries with a count, then the dead-letter queue."""

from __future__ import annotations

from shared.broker.outcome import DeadLetter, Delivery, Done, Retry, decide
from shared.errors import FileNotFound, OneStopUnavailable


def test_the_decision_retries_with_a_count_then_dead_letters():
    first, last = Delivery(tag=1, body=b"", headers={}, attempt=0), Delivery(tag=2, body=b"", headers={}, attempt=5)
    assert isinstance(decide(first, Done(), 6), Done)
    assert decide(first, OneStopUnavailable("503"), 6) == Retry(1, "onestop-unavailable", "503")
    assert decide(first, ValueError("boom"), 6) == Retry(1, "unexpected", "boom")
    assert decide(first, FileNotFound("404"), 6) == DeadLetter("file-not-found", "404")
    gave_up = decide(last, OneStopUnavailable("503"), 6)
    assert isinstance(gave_up, DeadLetter) and gave_up.reason == "onestop-unavailable"
    assert gave_up.error.startswith("gave up after 6 attempts")
