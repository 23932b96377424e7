"""The consume loop every queue-driven service runs.

One thread owns the connection: it receives deliveries, groups them into batches, and is the only one
that publishes and acknowledges. Handlers run on a pool of worker threads, so a long download never
stops the connection's thread from answering heartbeats; a finished batch is handed back with
`add_callback_threadsafe`, the one pika call that is safe from another thread.

A delivery is acknowledged only after the messages it produces are confirmed by the broker (or after
its retry or dead letter is confirmed). Those confirms are not waited for one by one: the thread sends,
goes on, and acknowledges each delivery when the confirms it waits for arrive. Results that come back
after their connection died are dropped: the broker redelivers those messages, and every effect is
idempotent.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pika
from pika.adapters.blocking_connection import BlockingChannel

from shared.backoff import Backoff
from shared.broker.connection import CONNECTION_ERRORS, describe
from shared.broker.outcome import (
    Decision,
    Delivery,
    Done,
    Retry,
    dead_letter_headers,
    decide,
    format_unexpected,
)
from shared.broker.publisher import ATTEMPT_HEADER, MAHOSO_HEADER, Publisher, properties
from shared.broker.session import BrokerSession
from shared.broker.topology import Topology
from shared.errors import reason_of
from shared.logs import one_line
from shared.observability import STAGE_SECONDS, health_of

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Delivery]], Sequence["Done | BaseException"]]
FailureHook = Callable[[Delivery, Decision], None]


@dataclass(frozen=True)
class Link:
    """One connection and what was opened on it. Results that come back for an older link are dropped:
    its deliveries were returned to the queue when it closed."""

    number: int
    connection: pika.BlockingConnection
    channel: BlockingChannel
    publisher: Publisher


def one_at_a_time(handle: Callable[[Delivery], Done]) -> BatchHandler:
    """Turns a handler of one delivery into a batch handler whose items fail on their own."""

    def handle_batch(deliveries: list[Delivery]) -> list[Done | BaseException]:
        results: list[Done | BaseException] = []
        for delivery in deliveries:
            try:
                results.append(handle(delivery))
            except Exception as exc:  # the decision is made per delivery by outcome.decide
                results.append(exc)
        return results

    return handle_batch


class Consumer:
    """Consumes one work queue until `stop()`, reconnecting with the shared back-off (shared/backoff.py)."""

    def __init__(
        self,
        *,
        service: str,
        amqp_url: str,
        topology: Topology,
        stage: str,
        handle: BatchHandler,
        concurrency: int = 1,
        batch_size: int = 1,
        batch_wait: float = 0.0,
        heartbeat: int = 60,
        shutdown_grace: float = 30.0,
        on_failure: FailureHook | None = None,
        on_progress: Callable[[], None] | None = None,
    ):
        self.service = service
        self.amqp_url = amqp_url
        self.topology = topology
        self.stage = stage
        self.queue = topology.queue(stage)
        self.handle = handle
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.heartbeat = heartbeat
        self.shutdown_grace = shutdown_grace
        self.on_failure = on_failure
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"{service}-worker")
        self.stopping = threading.Event()
        self.links = 0  # how many connections were opened: the number of the current link
        self.link: Link | None = None
        self.backoff = Backoff(first=0.5, cap=30.0)
        self.buffer: list[Delivery] = []
        self.buffer_since = 0.0
        self.in_flight = 0
        # Settled deliveries whose outgoing messages the broker has not confirmed yet: (sequences, tag).
        self.awaiting: list[tuple[list[int], int]] = []
        self.ack_scheduled = False
        # Read by the health endpoint.
        self.connected = False
        self.last_turn = time.time()
        self.on_progress = on_progress

    # -- public -----------------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._consume()
            except CONNECTION_ERRORS as exc:
                self.connected = False
                delay = self.backoff.next()
                # One line per attempt (a wrong password would otherwise repeat pika's tracebacks forever).
                log.warning(
                    "%s: RabbitMQ at %s: %s; next try in %.1fs",
                    self.service,
                    describe(self.amqp_url),
                    one_line(exc),
                    delay,
                )
                log.debug("%s: the broker connection failed", self.service, exc_info=True)
                self.stopping.wait(delay)
        self.pool.shutdown(wait=True, cancel_futures=True)
        log.info("%s: stopped", self.service)

    def health(self) -> tuple[bool, str]:
        return health_of(lambda: self.connected, lambda: self.last_turn)()

    def stop(self) -> None:
        """Stop taking work; in-flight work is finished (within the grace period) or returned."""
        self.stopping.set()

    # -- the connection's thread ----------------------------------------------------------------

    def _consume(self) -> None:
        self.links += 1
        number = self.links
        self.buffer = []
        self.in_flight = 0
        self.awaiting = []
        self.ack_scheduled = False
        session = BrokerSession.open(
            self.amqp_url,
            self.service,
            self.topology,
            heartbeat=self.heartbeat,
            on_confirmed=lambda: self._schedule_acks(number),
        )
        try:
            link = Link(number, session.connection, session.channel, session.publisher)
            self.link = link
            link.channel.basic_qos(prefetch_count=self.concurrency * self.batch_size)
            tag = link.channel.basic_consume(self.queue, self._on_message)
            self.connected = True
            self.backoff.reset()
            log.info(
                "%s: consuming %s (%d workers, batches of %d)",
                self.service,
                self.queue,
                self.concurrency,
                self.batch_size,
            )
            while not self.stopping.is_set():
                link.connection.process_data_events(time_limit=self._wait_time())
                self._ack_confirmed(link)
                self._dispatch(link)
                self.last_turn = time.time()
            self._drain(link, tag)
        finally:
            self.connected = False
            session.close()

    def _wait_time(self) -> float:
        if self.buffer and self.in_flight < self.concurrency:
            return max(0.0, min(0.2, self.buffer_since + self.batch_wait - time.monotonic()))
        return 0.2

    def _on_message(self, channel, method, props, body: bytes) -> None:
        headers = dict(props.headers or {})
        if not self.buffer:
            self.buffer_since = time.monotonic()
        self.buffer.append(
            Delivery(
                tag=method.delivery_tag,
                body=body,
                headers=headers,
                redelivered=method.redelivered,
                attempt=int(headers.get(ATTEMPT_HEADER, 0) or 0),
            )
        )

    def _dispatch(self, link: Link) -> None:
        """Hands full (or old enough) batches to the workers."""
        while self.buffer and self.in_flight < self.concurrency:
            due = time.monotonic() - self.buffer_since >= self.batch_wait
            if len(self.buffer) < self.batch_size and not due:
                return
            batch, self.buffer = self.buffer[: self.batch_size], self.buffer[self.batch_size :]
            self.buffer_since = time.monotonic()
            self.in_flight += 1
            future = self.pool.submit(self._work, batch)
            future.add_done_callback(functools.partial(self._hand_back, link, batch))

    def _drain(self, link: Link, consumer_tag: str) -> None:
        """Graceful stop: no new deliveries; finish what is in flight; return what never started."""
        link.channel.basic_cancel(consumer_tag)
        for delivery in self.buffer:
            link.channel.basic_nack(delivery.tag, requeue=True)
        self.buffer = []
        deadline = time.monotonic() + self.shutdown_grace
        while (self.in_flight or self.awaiting) and time.monotonic() < deadline:
            link.connection.process_data_events(time_limit=0.2)
            self._ack_confirmed(link)
        if self.in_flight or self.awaiting:
            log.warning(
                "%s: %d batches still running after %.0fs; the broker will hand them out again",
                self.service,
                self.in_flight,
                self.shutdown_grace,
            )

    # -- worker threads -----------------------------------------------------------------------------

    def _work(self, batch: list[Delivery]) -> list[Decision]:
        started = time.monotonic()
        try:
            outcomes = list(self.handle(batch))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"handler returned {len(outcomes)} results for {len(batch)} deliveries")
        except Exception as exc:  # the whole batch failed: each delivery is retried or dead-lettered
            outcomes = [exc] * len(batch)
        STAGE_SECONDS.labels(self.service).observe(time.monotonic() - started)
        decisions: list[Decision] = []
        for delivery, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException) and reason_of(outcome) == "unexpected":
                log.error("%s: unexpected error\n%s", self.service, format_unexpected(outcome))
            decision = decide(delivery, outcome, self.topology.max_attempts)
            if not isinstance(decision, Done) and self.on_failure:
                try:
                    self.on_failure(delivery, decision)
                except Exception:
                    log.exception("%s: could not record a failure", self.service)
            decisions.append(decision)
        return decisions

    def _hand_back(self, link: Link, batch: list[Delivery], future: Future) -> None:
        # If that connection is gone, the broker hands the messages out again.
        with contextlib.suppress(*CONNECTION_ERRORS):
            link.connection.add_callback_threadsafe(lambda: self._settle(link, batch, future))

    # -- back on the connection's thread ----------------------------------------------------------

    def _settle(self, link: Link, batch: list[Delivery], future: Future) -> None:
        if link is not self.link:
            return
        self.in_flight -= 1
        decisions = future.result()  # _work never raises
        for delivery, decision in zip(batch, decisions, strict=True):
            self.awaiting.append((self._apply(link.publisher, delivery, decision), delivery.tag))
        self._ack_confirmed(link)
        if self.on_progress:
            self.on_progress()

    def _apply(self, publisher: Publisher, delivery: Delivery, decision: Decision) -> list[int]:
        """Sends what the decision produces; returns the sequence numbers whose confirms the ack waits for."""
        if isinstance(decision, Done):
            return [publisher.send(self.topology.queue(stage), message) for stage, message in decision.publish]
        if isinstance(decision, Retry):
            headers = dict(delivery.headers, **{ATTEMPT_HEADER: decision.number})
            target = self.topology.retry_queue(self.stage, decision.number)
            log.warning(
                "%s: %s failed (%s); retry %d via %s",
                self.service,
                _name(delivery),
                decision.error,
                decision.number,
                target,
            )
            return [publisher.send_raw(target, delivery.body, properties(None, headers))]
        headers = dead_letter_headers(delivery, decision, self.service, self.queue)
        log.error("%s: %s dead-lettered (%s): %s", self.service, _name(delivery), decision.reason, decision.error)
        return [
            publisher.send_raw(self.topology.dead_letter_queue(self.stage), delivery.body, properties(None, headers))
        ]

    def _schedule_acks(self, number: int) -> None:
        """Confirms arrived (inside pika's I/O): acknowledge from the event loop, right away."""
        link = self.link
        if self.ack_scheduled or link is None or link.number != number or not self.awaiting:
            return
        self.ack_scheduled = True
        link.connection.call_later(0, lambda: self._ack_confirmed(link))

    def _ack_confirmed(self, link: Link) -> None:
        if link is not self.link:
            return
        self.ack_scheduled = False
        if not self.awaiting:
            return
        link.publisher.flush()  # sends returned messages again; raises if the broker refused one
        waiting = []
        for sequences, tag in self.awaiting:
            if all(link.publisher.is_confirmed(seq) for seq in sequences):
                # Queued, not written and waited for one by one: the loop's next turn writes them all.
                link.channel._impl.basic_ack(tag)
            else:
                waiting.append((sequences, tag))
        self.awaiting = waiting


def _name(delivery: Delivery) -> str:
    return str(delivery.headers.get(MAHOSO_HEADER) or f"delivery {delivery.tag}")
