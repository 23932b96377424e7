"""Handing dossiers to the pipeline: one poll of one unit (the fetcher, `dongbo backfill`) and the hand-off
itself (also `dongbo reconcile --requeue`).

A poll reads the one-stop system's answer as a stream; a dossier is handed on when it is new, when its
content changed, or when it has been in flight longer than DONGBO_INFLIGHT_TIMEOUT (a message lost or stuck
somewhere). A dossier that failed for good is not handed on again until the one-stop system sends it
changed; an operator replays it from the dead-letter queue after fixing the cause. Handing on is always
the same step: the message published and confirmed, then recorded in `sync_state`.

Whatever one dossier holds, it is that dossier's problem alone (DESIGN, delivery rules 6 and 7): one that
fails validation, breaks a limit, or cannot even be turned into a message is parked in the dead-letter
queue with its reason and recorded as failed, and the poll goes on with the next. Keys that reach the
database or a header are made safe first (`safe_key`), so a NUL in a `mahoso` cannot fail the lookup of its
whole chunk.

A message the broker refuses closes the publisher's channel, so the chunk it was in cannot be finished
here: `ChunkRefused` names the dossiers that were in flight, the fetcher reconnects, and the next poll
sends those "suspects" one at a time. The one refused alone is the culprit; the poll after that parks it
(`broker-refused`) without sending it, and its neighbours go through.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import islice
from threading import Event

import pika.exceptions
from sqlalchemy.engine import Engine

from shared.broker.dead_letters import FETCHER, park
from shared.broker.publisher import NEW_DOSSIER_HEADER, Publisher, PublishRefused
from shared.broker.topology import DOWNLOAD, Topology
from shared.db import sync_state
from shared.errors import BrokerRefused, MalformedDossier
from shared.messages import DossierFetched
from shared.onestop import InvalidDossier, OneStopClient
from shared.onestop.dossier_items import ItemLimits, check_limits, parked_body, safe_key, summary
from shared.onestop.models import Dossier

log = logging.getLogger(__name__)

CHUNK = 500
# What a broker refusal of one message looks like from here: a nack, or the channel closed under it.
REFUSALS = (PublishRefused, pika.exceptions.ChannelClosedByBroker, pika.exceptions.ChannelWrongStateError)


@dataclass
class PollResult:
    seen: int = 0
    published: int = 0
    invalid: int = 0
    complete: bool = True  # False when the poll was stopped before the end of the answer


@dataclass
class Refusals:
    """What the fetcher learned from broker refusals; kept across reconnects by the fetcher."""

    suspects: set[str] = field(default_factory=set)  # were in flight when a message was refused
    culprits: set[str] = field(default_factory=set)  # refused alone: parked without being sent again


class ChunkRefused(Exception):
    """The broker refused a message of these dossiers; the channel is gone."""

    def __init__(self, madonvi: str, mahosos: list[str], cause: BaseException):
        super().__init__(f"the broker refused a message among {len(mahosos)} dossiers of unit {madonvi}: {cause}")
        self.madonvi = madonvi
        self.mahosos = mahosos


def should_publish(state: dict | None, digest: str, now: datetime, inflight_timeout: timedelta,
                   resend_synced: bool = True) -> bool:
    """`resend_synced`: the no-date call returned a dossier already marked synced, so the mark did not
    stick and must be sent again; a date-range call returns synced dossiers anyway, so there it is False."""
    if state is None:
        return True
    if state["source_hash"] and state["source_hash"] != digest:
        return True
    if state["status"] == sync_state.FAILED or (state["status"] == sync_state.SYNCED and not resend_synced):
        return False
    published_at = state["published_at"] or state["updated_at"]
    if published_at.tzinfo is None:  # SQLite hands back naive UTC datetimes
        published_at = published_at.replace(tzinfo=now.tzinfo)
    return now - published_at > inflight_timeout


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def poll_unit(client: OneStopClient, publisher: Publisher, engine: Engine, topology: Topology, madonvi: str, *,
              inflight_timeout: timedelta, tungay: date | None = None, denngay: date | None = None,
              stopping: Event | None = None, limits: ItemLimits | None = None,
              refusals: Refusals | None = None) -> PollResult:
    limits = limits or ItemLimits()
    refusals = refusals if refusals is not None else Refusals()
    result = PollResult()
    for chunk in _chunks(client.fetch_dossiers(madonvi, tungay, denngay), CHUNK):
        if stopping is not None and stopping.is_set():
            # An answer may take minutes to read; what is left is read again by the next poll.
            result.complete = False
            log.info("unit %s: poll stopped after %d dossiers", madonvi, result.seen, extra={"madonvi": madonvi})
            return result
        result.seen += len(chunk)
        valid, invalid = _check(chunk, limits, refusals)
        with engine.begin() as connection:
            states = sync_state.load(connection, list(valid) + [safe_key(i.mahoso) for i in invalid if i.mahoso])
        result.published += _hand_on(publisher, engine, topology, madonvi, valid, states, refusals,
                                     resend_synced=tungay is None and denngay is None,
                                     inflight_timeout=inflight_timeout)
        for item in invalid:
            if _dead_letter_invalid(publisher, engine, topology, item, states.get(safe_key(item.mahoso))):
                result.invalid += 1
    log.info("unit %s: %d dossiers returned, %d handed on, %d invalid", madonvi, result.seen, result.published,
             result.invalid, extra={"madonvi": madonvi})
    return result


def _check(chunk: list, limits: ItemLimits, refusals: Refusals
           ) -> tuple[dict[str, DossierFetched], list[InvalidDossier]]:
    """Each dossier of a chunk as the message to send, or as what is wrong with it."""
    valid: dict[str, DossierFetched] = {}  # a repeated mahoso counts once, as its last copy
    invalid: list[InvalidDossier] = []
    for item in chunk:
        if isinstance(item, InvalidDossier):
            invalid.append(item)
            continue
        try:
            message = DossierFetched.of(item)
            checked: Dossier | InvalidDossier = check_limits(item, limits, len(message.to_bytes()))
        except Exception as exc:  # whatever it is, it is this dossier's alone
            log.exception("dossier %s: could not be made a message", item.mahoso, extra={"mahoso": item.mahoso})
            checked = InvalidDossier(item.mahoso, item.madonvi, summary(None, item.mahoso, item.madonvi, 0, "error"),
                                     f"could not be made a message: {type(exc).__name__}: {exc}",
                                     MalformedDossier.reason)
        if isinstance(checked, Dossier) and item.mahoso in refusals.culprits:
            # Within the limits, so its copy is bounded: a replay can send it on once the cause is gone.
            checked = InvalidDossier(item.mahoso, item.madonvi, item.model_dump(mode="json"),
                                     "the broker refused its message (see the fetcher's log for what it said)",
                                     BrokerRefused.reason)
        if isinstance(checked, InvalidDossier):
            invalid.append(checked)
            valid.pop(item.mahoso, None)
        else:
            valid[item.mahoso] = message
    return valid, invalid


def _hand_on(publisher: Publisher, engine: Engine, topology: Topology, madonvi: str,
             messages: dict[str, DossierFetched], states: dict[str, dict], refusals: Refusals, *,
             resend_synced: bool, inflight_timeout: timedelta) -> int:
    """Hands on the dossiers of a poll that need it; returns how many."""
    now = sync_state.now()
    chosen = [message for mahoso, message in messages.items()
              if should_publish(states.get(mahoso), message.source_hash, now, inflight_timeout, resend_synced)]
    hand_on(publisher, engine, topology, madonvi, chosen, states, refusals)
    return len(chosen)


def hand_on(publisher: Publisher, engine: Engine, topology: Topology, madonvi: str,
            messages: list[DossierFetched], states: dict[str, dict], refusals: Refusals | None = None) -> None:
    """Publishes these messages to the download queue, confirmed, then records them as handed on.

    `states` (from `sync_state.load`) tells which dossiers were never handed on before: only those carry
    the new-dossier mark. ChunkRefused when the broker refuses one of them."""
    refusals = refusals if refusals is not None else Refusals()
    batch = [m for m in messages if m.mahoso not in refusals.suspects]
    alone = [m for m in messages if m.mahoso in refusals.suspects]
    queue = topology.queue(DOWNLOAD)
    # Suspects go one per confirm, so that a refusal names its dossier; the rest share one wait.
    for group in [batch] + [[m] for m in alone]:
        if not group:
            continue
        handed_at = sync_state.now()
        try:
            for message in group:
                headers = {NEW_DOSSIER_HEADER: True} if states.get(message.mahoso) is None else None
                publisher.send(queue, message, headers)
            publisher.confirm_all()
        except REFUSALS as exc:
            raise ChunkRefused(madonvi, [m.mahoso for m in group], exc) from exc
        refusals.suspects.difference_update(m.mahoso for m in group)
        with engine.begin() as connection:  # recorded only once confirmed
            sync_state.record_published(connection, [(m.mahoso, m.madonvi, m.source_hash) for m in group], handed_at)


def _dead_letter_invalid(
    publisher: Publisher, engine: Engine, topology: Topology, item: InvalidDossier, state: dict | None
) -> bool:
    """Parks a dossier the one-stop system sent malformed, once per version of it."""
    body = parked_body(item)
    digest = hashlib.sha256(body).hexdigest()
    mahoso, madonvi = safe_key(item.mahoso), safe_key(item.madonvi) or item.madonvi
    error = safe_key(item.error, 1000)  # it may quote a key of the item
    if state is not None and state["status"] == sync_state.FAILED and state["source_hash"] == digest:
        return False
    park(publisher, topology, DOWNLOAD, body, mahoso=mahoso, madonvi=madonvi, reason=item.reason,
         error=error, service=FETCHER)
    log.error("dossier %s of unit %s was parked (%s): %s", mahoso, madonvi, item.reason, error,
              extra={"mahoso": mahoso, "madonvi": madonvi, "reason": item.reason})
    if mahoso:
        with engine.begin() as connection:
            sync_state.record_failed_input(connection, mahoso, madonvi, digest, item.reason, error)
    return True
