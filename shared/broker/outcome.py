"""The one place that decides what happens to a delivery: pass it on, retry it later, or dead-letter it.

A handler returns `Done` (with the messages to publish next) or raises. Permanent errors dead-letter at
once; anything else is retried with growing delay until the attempts run out, then dead-lettered with
the last reason. Nothing is ever requeued in a loop.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.errors import is_permanent, reason_of
from shared.messages import Message

REASON_HEADER = "x-dongbo-reason"
ERROR_HEADER = "x-dongbo-error"
SERVICE_HEADER = "x-dongbo-service"
ATTEMPTS_HEADER = "x-dongbo-attempts"
QUEUE_HEADER = "x-dongbo-queue"
FAILED_AT_HEADER = "x-dongbo-failed-at"


@dataclass
class Delivery:
    """One message as a handler sees it."""

    tag: int
    body: bytes
    headers: dict[str, Any]
    redelivered: bool = False
    attempt: int = 0  # 0 on the first try, counted in the message's headers across retries


@dataclass
class Done:
    """Handled: publish these (stage, message) pairs, then acknowledge."""

    publish: list[tuple[str, Message]] = field(default_factory=list)


@dataclass
class Retry:
    """Failed for now: wait in the delay queue of retry `number`, then try again."""

    number: int
    reason: str
    error: str


@dataclass
class DeadLetter:
    """Failed for good: park in the dead-letter queue with the reason."""

    reason: str
    error: str


Decision = Done | Retry | DeadLetter


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 1000 else text[:997] + "..."


def decide(delivery: Delivery, outcome: Done | BaseException, max_attempts: int) -> Decision:
    if isinstance(outcome, Done):
        return outcome
    reason, error = reason_of(outcome), describe(outcome)
    if is_permanent(outcome):
        return DeadLetter(reason, error)
    next_attempt = delivery.attempt + 1
    if next_attempt >= max_attempts:
        return DeadLetter(reason, f"gave up after {next_attempt} attempts: {error}")
    return Retry(next_attempt, reason, error)


def dead_letter_headers(delivery: Delivery, decision: DeadLetter, service: str, queue: str) -> dict[str, Any]:
    headers = dict(delivery.headers)
    headers.update({
        REASON_HEADER: decision.reason,
        ERROR_HEADER: decision.error,
        SERVICE_HEADER: service,
        ATTEMPTS_HEADER: delivery.attempt + 1,
        QUEUE_HEADER: queue,
        FAILED_AT_HEADER: datetime.now(UTC).isoformat(timespec="seconds"),
    })
    return headers


def format_unexpected(exc: BaseException) -> str:
    """The traceback of an error dongbo did not expect, for the log."""
    return "".join(traceback.format_exception(exc)).rstrip()
