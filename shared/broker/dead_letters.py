"""The dead-letter engine behind `dongbo dlq`: reading a dead-letter queue once, and settling its messages.

One pass over a dead-letter queue (`scan`) notes how many messages it holds, then takes them one by one
with basic.get (manual acknowledgement) until it has taken that many or the queue is empty. A matching
message is handled at once; every other one stays unacknowledged until the pass ends and is then given
back. So a pass sees each message once and cannot loop, whatever order the queue returns messages in;
messages dead-lettered during the pass wait for the next one.

Giving back is basic.nack(requeue=True), which keeps a message where it was. Each return counts as a
delivery, though, and quorum queues drop a message past their delivery limit (RabbitMQ 4 sets 20 by
default, and a dead-letter queue has no dead-letter target of its own): a message that has been given back
often is therefore republished fresh to the end of its queue, confirmed, and its old copy acknowledged.

`replay` publishes the message to its stage's work queue with publisher confirms and only then
acknowledges the dead letter. A crash in between leaves the message both replayed and still in the
dead-letter queue, never lost; replaying that copy again is harmless, since every stage is idempotent.

A dossier the fetcher parked (malformed, too large, ...) holds the item as the one-stop system sent it, not
a message of the download stage. Its replay validates it again exactly as the fetcher does
(`dossier_items.validate`): one that now passes (the limit was raised) goes on as the message the fetcher
would have made; one that still fails goes back to the dead-letter queue with its reason. Never the raw
item to the download queue, where it could read as a dossier with no files.

`park` is how a service other than a queue consumer (the fetcher) dead-letters: the headers come from the
same place as a consumer's (`outcome.dead_letter_headers`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.broker.topology import Topology

if TYPE_CHECKING:
    import pika

    from shared.broker.publisher import Publisher
    from shared.onestop.dossier_items import ItemLimits

# The broker layer (and pika, pydantic under it) is imported where used, so `dongbo --help` stays quick.
# What the broker adds when it dead-letters or redelivers a message; a replayed message starts clean.
BROKER_HEADERS = ("x-death", "x-delivery-count", "x-acquired-count")
BROKER_PREFIXES = ("x-first-death-", "x-last-death-")
REFRESH_AFTER = 10  # returns before a message is republished fresh (well below RabbitMQ 4's limit of 20)


def failure_headers() -> tuple[str, ...]:
    """The headers a dongbo service sets when it dead-letters a message (shared/broker/outcome.py)."""
    from shared.broker import outcome

    return (outcome.REASON_HEADER, outcome.ERROR_HEADER, outcome.SERVICE_HEADER, outcome.ATTEMPTS_HEADER,
            outcome.QUEUE_HEADER, outcome.FAILED_AT_HEADER)


@dataclass
class DeadLetter:
    """One message of a dead-letter queue, with what its headers say about its failure."""

    dlq: str
    stage: str
    tag: int
    body: bytes
    props: pika.BasicProperties
    mahoso: str
    madonvi: str
    reason: str
    error: str
    service: str
    attempts: int | None
    failed_at: str
    queue: str
    returns: int  # how often the broker has handed it out and had it back

    def as_dict(self, with_body: bool = False) -> dict[str, Any]:
        data = {"dlq": self.dlq, "queue": self.queue, "mahoso": self.mahoso, "madonvi": self.madonvi,
                "reason": self.reason, "error": self.error, "service": self.service, "attempts": self.attempts,
                "failed_at": self.failed_at}
        if with_body:
            data["body"] = self.body.decode("utf-8", errors="replace")
        return data


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _keys_in_body(body: bytes) -> dict:
    """The dossier's keys when the headers lack them (a malformed dossier parked by the fetcher)."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def read(topology: Topology, stage: str, tag: int, props: pika.BasicProperties, body: bytes) -> DeadLetter:
    from shared.broker import outcome
    from shared.broker.publisher import ATTEMPT_HEADER, MADONVI_HEADER, MAHOSO_HEADER

    headers = props.headers or {}
    deaths = headers.get("x-death") or []
    death = deaths[0] if deaths and isinstance(deaths[0], dict) else {}  # the newest comes first
    if headers.get(outcome.REASON_HEADER):
        reason, error = _text(headers[outcome.REASON_HEADER]), _text(headers.get(outcome.ERROR_HEADER))
        service, queue = _text(headers.get(outcome.SERVICE_HEADER)), _text(headers.get(outcome.QUEUE_HEADER))
        attempts = _int(headers.get(outcome.ATTEMPTS_HEADER))
        failed_at = _text(headers.get(outcome.FAILED_AT_HEADER))
    elif death:
        # Dead-lettered by RabbitMQ itself: no dongbo service got to say why.
        reason = _text(death.get("reason")).replace("_", "-") or "unknown"
        queue = _text(death.get("queue"))
        error = (f"redelivered more often than the delivery limit of {queue}: a worker kept dying or losing "
                 "its connection while handling it" if reason == "delivery-limit"
                 else f"dead-lettered by the broker from {queue} ({reason})")
        service, failed_at = "broker", _text(death.get("time"))
        attempt = _int(headers.get(ATTEMPT_HEADER))
        attempts = None if attempt is None else attempt + 1
    else:
        reason, error, service, queue, attempts, failed_at = "unknown", "", "", topology.queue(stage), None, ""
    keys = {} if headers.get(MAHOSO_HEADER) and headers.get(MADONVI_HEADER) else _keys_in_body(body)
    returns = max(_int(headers.get(name)) or 0 for name in ("x-delivery-count", "x-acquired-count"))
    return DeadLetter(
        dlq=topology.dead_letter_queue(stage), stage=stage, tag=tag, body=body, props=props,
        mahoso=_text(headers.get(MAHOSO_HEADER) or keys.get("mahoso")),
        madonvi=_text(headers.get(MADONVI_HEADER) or keys.get("madonvi")),
        reason=reason, error=error, service=service, attempts=attempts, failed_at=failed_at,
        queue=queue or topology.queue(stage), returns=returns,
    )


@dataclass
class Selection:
    """The filters: a message matches when it passes every one given (each may be given several times)."""

    units: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)
    mahosos: set[str] = field(default_factory=set)

    def matches(self, letter: DeadLetter) -> bool:
        return ((not self.units or letter.madonvi in self.units)
                and (not self.reasons or letter.reason in self.reasons)
                and (not self.mahosos or letter.mahoso in self.mahosos))


def _properties(props: pika.BasicProperties, headers: dict) -> pika.BasicProperties:
    import pika

    return pika.BasicProperties(
        content_type=props.content_type, content_encoding=props.content_encoding, type=props.type,
        message_id=props.message_id, correlation_id=props.correlation_id, timestamp=props.timestamp,
        app_id=props.app_id, delivery_mode=pika.DeliveryMode.Persistent, headers=headers,
    )


def _without_broker_headers(headers: dict) -> dict:
    return {k: v for k, v in headers.items() if k not in BROKER_HEADERS and not k.startswith(BROKER_PREFIXES)}


def replay_headers(letter: DeadLetter) -> dict:
    """A fresh start: attempt 0, no failure headers, no trace of the broker's dead-lettering."""
    from shared.broker.publisher import ATTEMPT_HEADER, MADONVI_HEADER, MAHOSO_HEADER, NEW_DOSSIER_HEADER

    dropped = (*failure_headers(), NEW_DOSSIER_HEADER)  # part of the dossier may be stored by now
    headers = {k: v for k, v in _without_broker_headers(letter.props.headers or {}).items() if k not in dropped}
    headers[ATTEMPT_HEADER] = 0
    if letter.mahoso:
        headers.setdefault(MAHOSO_HEADER, letter.mahoso)
    if letter.madonvi:
        headers.setdefault(MADONVI_HEADER, letter.madonvi)
    return headers


def refreshed_headers(letter: DeadLetter) -> dict:
    """A copy that keeps what `show` tells about the failure, in dongbo's own headers (the broker's
    x-death is its own record and is not to be trusted when a client republishes it)."""
    from shared.broker import outcome

    headers = _without_broker_headers(letter.props.headers or {})
    headers.update({outcome.REASON_HEADER: letter.reason, outcome.ERROR_HEADER: letter.error,
                    outcome.SERVICE_HEADER: letter.service, outcome.QUEUE_HEADER: letter.queue,
                    outcome.FAILED_AT_HEADER: letter.failed_at})
    if letter.attempts is not None:
        headers[outcome.ATTEMPTS_HEADER] = letter.attempts
    return headers


# An action on a matching message: returns True when it settled the message itself (acked it).
Action = Callable[[DeadLetter], bool]


def scan(channel, publisher: Publisher, topology: Topology, stage: str, selection: Selection, act: Action,
         limit: int | None = None, refresh_after: int = REFRESH_AFTER) -> int:
    """Runs `act` on each matching message of the stage's dead-letter queue once; returns how many matched."""
    dlq = topology.dead_letter_queue(stage)
    total = channel.queue_declare(dlq, passive=True).method.message_count
    held: list[DeadLetter] = []
    taken = matched = 0
    try:
        while taken < total and (limit is None or matched < limit):
            method, props, body = channel.basic_get(dlq, auto_ack=False)
            if method is None:
                break
            taken += 1
            letter = read(topology, stage, method.delivery_tag, props, body)
            if selection.matches(letter):
                matched += 1
                if act(letter):
                    continue
            if letter.returns + 1 < refresh_after:
                letter.body = b""  # only its delivery tag is needed to give it back
            held.append(letter)
    finally:
        if channel.is_open:
            give_back(channel, publisher, held, refresh_after)
    return matched


def give_back(channel, publisher: Publisher, held: list[DeadLetter], refresh_after: int = REFRESH_AFTER) -> None:
    returned: dict[str, int] = {}
    for letter in held:
        if letter.returns + 1 >= refresh_after:
            publisher.publish_raw(letter.dlq, letter.body, _properties(letter.props, refreshed_headers(letter)))
            channel.basic_ack(letter.tag)
        else:
            channel.basic_nack(letter.tag, requeue=True)
        returned[letter.dlq] = returned.get(letter.dlq, 0) + 1
    _wait_until_counted(channel, returned)


def _wait_until_counted(channel, returned: dict[str, int], timeout: float = 10.0) -> None:
    """A quorum queue counts given-back messages again a moment later; wait for that, so that the next
    command (or the operator's next look) sees every dead letter."""
    deadline = time.monotonic() + timeout
    for dlq, count in returned.items():
        while channel.queue_declare(dlq, passive=True).method.message_count < count and time.monotonic() < deadline:
            time.sleep(0.05)


FETCHER = "fetcher"  # the service name on what the fetcher parks


def park(publisher: Publisher, topology: Topology, stage: str, body: bytes, *, mahoso: str, madonvi: str,
         reason: str, error: str, service: str) -> None:
    """Dead-letters `body` for `stage` with the reason, as a consumer would; returns once confirmed.

    `mahoso` and `madonvi` must already be safe (`dossier_items.safe_key`): they become headers.
    """
    import pika

    from shared.broker import outcome
    from shared.broker.publisher import MADONVI_HEADER, MAHOSO_HEADER

    delivery = outcome.Delivery(tag=0, body=body, headers={MAHOSO_HEADER: mahoso, MADONVI_HEADER: madonvi})
    headers = outcome.dead_letter_headers(delivery, outcome.DeadLetter(reason, outcome.describe(Exception(error))),
                                          service, topology.queue(stage))
    props = pika.BasicProperties(content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent,
                                 headers=headers)
    publisher.publish_raw(topology.dead_letter_queue(stage), body, props)


def replay(publisher: Publisher, topology: Topology, letter: DeadLetter, limits: ItemLimits | None = None) -> None:
    """Back to its stage's work queue with a fresh start, then gone from the dead-letter queue.

    `limits`: what a dossier the fetcher parked is validated against again (the fetcher's settings).
    """
    # Confirmed publish first, acknowledgement second: a crash between them duplicates, never loses.
    if letter.service == FETCHER:
        _replay_parked_item(publisher, topology, letter, limits or _limits_of_environment())
    else:
        publisher.publish_raw(topology.queue(letter.stage), letter.body,
                              _properties(letter.props, replay_headers(letter)))
    publisher.channel.basic_ack(letter.tag)


def _replay_parked_item(publisher: Publisher, topology: Topology, letter: DeadLetter, limits: ItemLimits) -> None:
    from shared.broker.publisher import MADONVI_HEADER, MAHOSO_HEADER, properties
    from shared.messages import DossierFetched
    from shared.onestop.dossier_items import parked_body, safe_key, validate
    from shared.onestop.models import InvalidDossier

    try:
        raw = json.loads(letter.body)
    except ValueError:
        raw = letter.body.decode("utf-8", errors="replace")
    item = validate(raw, letter.madonvi or "", limits)
    if isinstance(item, InvalidDossier):
        park(publisher, topology, letter.stage, parked_body(item), mahoso=safe_key(item.mahoso) or letter.mahoso,
             madonvi=safe_key(item.madonvi) or letter.madonvi, reason=item.reason, error=item.error,
             service=FETCHER)
        return
    message = DossierFetched.of(item)
    # The version is when the fetcher saw it, not now: a newer version fetched since must stay newer.
    with contextlib.suppress(ValueError):
        message = message.model_copy(update={"fetched_at": datetime.fromisoformat(letter.failed_at)})
    headers = {MAHOSO_HEADER: message.mahoso, MADONVI_HEADER: message.madonvi}
    publisher.publish_raw(topology.queue(letter.stage), message.to_bytes(), properties(message, headers))


def _limits_of_environment() -> ItemLimits:
    """The limits of the settings this command runs with, when its caller did not pass them."""
    from shared.onestop.dossier_items import ItemLimits
    from shared.settings import load_settings

    return ItemLimits.from_settings(load_settings())


def purge(channel, letter: DeadLetter) -> None:
    """Gone for good: acknowledging a dead letter deletes it."""
    channel.basic_ack(letter.tag)
