"""One poll of one unit: read the one-stop system's answer as a stream and hand new dossiers on."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import islice
from threading import Event

from sqlalchemy.engine import Engine

from services.fetcher.selection import should_publish, source_hash
from shared.broker.outcome import ATTEMPTS_HEADER, ERROR_HEADER, QUEUE_HEADER, REASON_HEADER, SERVICE_HEADER
from shared.broker.publisher import MADONVI_HEADER, MAHOSO_HEADER, NEW_DOSSIER_HEADER, Publisher, properties
from shared.broker.topology import DOWNLOAD, Topology
from shared.db import sync_state
from shared.messages import DossierFetched
from shared.onestop import InvalidDossier, OneStopClient
from shared.onestop.models import Dossier

log = logging.getLogger(__name__)

CHUNK = 500


@dataclass
class PollResult:
    seen: int = 0
    published: int = 0
    invalid: int = 0
    complete: bool = True  # False when the poll was stopped before the end of the answer


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def poll_unit(client: OneStopClient, publisher: Publisher, engine: Engine, topology: Topology, madonvi: str, *,
              inflight_timeout: timedelta, tungay: date | None = None, denngay: date | None = None,
              stopping: Event | None = None) -> PollResult:
    result = PollResult()
    for chunk in _chunks(client.fetch_dossiers(madonvi, tungay, denngay), CHUNK):
        if stopping is not None and stopping.is_set():
            # An answer may take minutes to read; what is left is read again by the next poll.
            result.complete = False
            log.info("unit %s: poll stopped after %d dossiers", madonvi, result.seen, extra={"madonvi": madonvi})
            return result
        valid = {item.mahoso: item for item in chunk if isinstance(item, Dossier)}  # a repeated mahoso counts once
        invalid = [item for item in chunk if isinstance(item, InvalidDossier)]
        result.seen += len(valid) + len(invalid)
        with engine.begin() as connection:
            states = sync_state.load(connection, list(valid) + [i.mahoso for i in invalid if i.mahoso])
        now = sync_state.now()
        resend_synced = tungay is None and denngay is None
        chosen = []
        for dossier in valid.values():
            digest = source_hash(dossier)
            state = states.get(dossier.mahoso)
            if should_publish(state, digest, now, inflight_timeout, resend_synced):
                headers = {NEW_DOSSIER_HEADER: True} if state is None else None
                publisher.send(topology.queue(DOWNLOAD), DossierFetched.of(dossier), headers)
                chosen.append((dossier.mahoso, dossier.madonvi, digest))
        publisher.confirm_all()  # one wait for the whole chunk, before it is recorded as handed on
        with engine.begin() as connection:
            sync_state.record_published(connection, chosen)
        result.published += len(chosen)
        for item in invalid:
            if _dead_letter_invalid(publisher, engine, topology, item, states.get(item.mahoso or "")):
                result.invalid += 1
    log.info("unit %s: %d dossiers returned, %d handed on, %d invalid", madonvi, result.seen, result.published,
             result.invalid, extra={"madonvi": madonvi})
    return result


def _dead_letter_invalid(
    publisher: Publisher, engine: Engine, topology: Topology, item: InvalidDossier, state: dict | None
) -> bool:
    """Parks a dossier the one-stop system sent malformed, once per version of it."""
    body = json.dumps(item.raw, ensure_ascii=False, default=str, sort_keys=True).encode("utf-8")
    digest = hashlib.sha256(body).hexdigest()
    if state is not None and state["status"] == sync_state.FAILED and state["source_hash"] == digest:
        return False
    reason = item.reason  # malformed-dossier, or too-many-files
    headers = {
        REASON_HEADER: reason,
        ERROR_HEADER: item.error[:1000],
        SERVICE_HEADER: "fetcher",
        QUEUE_HEADER: topology.queue(DOWNLOAD),
        ATTEMPTS_HEADER: 1,
        MAHOSO_HEADER: item.mahoso or "",
        MADONVI_HEADER: item.madonvi,
    }
    publisher.publish_raw(topology.dead_letter_queue(DOWNLOAD), body, properties(None, headers))
    log.error(
        "dossier %s of unit %s is malformed and was dead-lettered: %s",
        item.mahoso,
        item.madonvi,
        item.error,
        extra={"mahoso": item.mahoso, "madonvi": item.madonvi, "reason": reason},
    )
    if item.mahoso:
        with engine.begin() as connection:
            sync_state.record_failed_input(connection, item.mahoso, item.madonvi, digest, reason, item.error)
    return True
