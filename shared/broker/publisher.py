"""Publishing with publisher confirms, persistent delivery and `mandatory=True`.

Waiting for each confirm in turn costs a broker round trip per message (about a millisecond here, which
capped the fetcher at a few hundred dossiers a second). So a message is *sent* without waiting, and the
caller asks later whether it is confirmed: the fetcher sends a chunk of dossiers and waits once for all
of them; a consumer acknowledges a delivery as soon as the messages it produced are confirmed, while its
connection's thread goes on with other work. `publish` / `publish_raw` keep the simple form (return
once confirmed) for the operator commands.

A message that no queue would take (its queue was deleted) comes back as unroutable: the topology is
declared again and the message sent again, and nothing counts as confirmed until that copy is, so a
deleted queue costs a moment, not a message. A message the broker refuses (nack) closes the channel's
work: `PublishRefused` is a connection error, so the caller reconnects and nothing is acknowledged.

pika's `BlockingChannel` only offers the wait-per-message form; this class drives the channel's
underlying `pika.channel.Channel` (`channel._impl`) for confirms and returns, as `BlockingChannel`
itself does. It is used only from the thread that owns the connection.

Constructing a Publisher does no I/O: `open()` puts the channel in confirm mode (`BrokerSession.open` calls it);
a Publisher never opened does that before its first message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions

from shared.broker.topology import Topology
from shared.messages import Message

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-dongbo-attempt"
MAHOSO_HEADER = "x-dongbo-mahoso"
MADONVI_HEADER = "x-dongbo-madonvi"
# Set by the fetcher on a dossier it never handed on before: none of its files can be in the bucket yet,
# so the downloader's first try need not ask the object store about each one.
NEW_DOSSIER_HEADER = "x-dongbo-new-dossier"


# Messages are handed to pika's channel without writing each to the socket at once (see `send_raw`); past
# this many bytes waiting to be written, the publisher writes them before taking more.
FLUSH_BYTES = 1024 * 1024


class PublishRefused(pika.exceptions.AMQPChannelError):
    """The broker nacked a message: it did not take responsibility for it."""


def properties(message: Message | None, headers: dict[str, Any] | None = None) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        type=message.kind if message is not None else None,
        headers=headers or {},
    )


class Publisher:
    """Publishes on one channel in confirm mode, many messages per round trip."""

    def __init__(self, channel, topology: Topology, on_confirmed: Callable[[], None] | None = None):
        self.channel = channel
        self.topology = topology
        self.on_confirmed = on_confirmed  # called (on the connection's thread) when confirms arrive
        self.sent = 0  # sequence number of the last message sent; the broker numbers them the same way
        self.unconfirmed: set[int] = set()
        self.returned: list[tuple[str, bytes, pika.BasicProperties]] = []  # to be sent again
        self.refused = 0
        self.opened = False
        self.unwritten = 0  # bytes of bodies handed to pika since output was last flushed

    def open(self) -> Publisher:
        """Puts the channel in confirm mode and listens for returned messages; waits for the broker's answer."""
        if self.opened:
            return self
        selected: list[bool] = []
        impl = self.channel._impl
        impl.add_on_return_callback(self._on_return)
        impl.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _frame: selected.append(True))
        self.channel._flush_output(lambda: bool(selected))
        self.opened = True
        return self

    # -- sending -----------------------------------------------------------------------------------

    def send(self, queue: str, message: Message, headers: dict[str, Any] | None = None) -> int:
        """Sends without waiting; returns the message's sequence number for `is_confirmed`."""
        # The dossier's keys ride in the headers too, so logs and `dongbo dlq` never parse a body.
        headers = {MAHOSO_HEADER: message.mahoso, MADONVI_HEADER: message.madonvi, **(headers or {})}
        return self.send_raw(queue, message.to_bytes(), properties(message, headers))

    def send_raw(self, queue: str, body: bytes, props: pika.BasicProperties) -> int:
        if not self.opened:
            self.open()
        # Counted before the call, so that a confirm arriving during any later I/O finds it.
        self.sent += 1
        self.unconfirmed.add(self.sent)
        # The underlying channel only queues the frames; the connection's next turn of I/O writes them.
        # `BlockingChannel.basic_publish` would also run the I/O loop until the socket took this one
        # message: a poll and a write per message, a quarter of a busy indexer's time.
        self.channel._impl.basic_publish(exchange="", routing_key=queue, body=body, properties=props, mandatory=True)
        self.unwritten += len(body)
        if self.unwritten >= FLUSH_BYTES:  # a long run of sends without I/O must not pile up in memory
            self.write()
        return self.sent

    def write(self) -> None:
        """Writes everything sent so far to the socket (without waiting for confirms)."""
        self.unwritten = 0
        self.channel._flush_output()

    def publish(self, queue: str, message: Message, headers: dict[str, Any] | None = None) -> None:
        """Sends and returns once the broker has confirmed."""
        self.send(queue, message, headers)
        self.confirm_all()

    def publish_raw(self, queue: str, body: bytes, props: pika.BasicProperties) -> None:
        self.send_raw(queue, body, props)
        self.confirm_all()

    # -- confirms ----------------------------------------------------------------------------------

    def is_confirmed(self, sequence: int) -> bool:
        """Whether the broker holds this message; while a returned message is being sent again, nothing is."""
        return sequence not in self.unconfirmed and not self.returned and not self.refused

    def confirm_all(self) -> None:
        """Blocks until the broker has confirmed every message sent so far."""
        while True:
            self.unwritten = 0
            self.channel._flush_output(lambda: not self.unconfirmed or self.refused)
            self.flush()
            if not self.unconfirmed:
                return

    def flush(self) -> None:
        """Sends returned messages again (after declaring the topology); raises if the broker refused one."""
        if self.refused:
            raise PublishRefused(f"the broker refused {self.refused} message(s)")
        if self.returned:
            # A queue must have been deleted. Its messages are sent again before anything counts as confirmed.
            returned, queues = self.returned, sorted({queue for queue, _, _ in self.returned})
            log.warning("queue(s) %s were missing; declaring the topology again", ", ".join(queues))
            self.topology.declare(self.channel)
            for queue, body, props in returned:
                self.send_raw(queue, body, props)
            # Only now: until the copies are sent, `is_confirmed` must say no for everything.
            self.returned = []

    # -- callbacks from pika, on the connection's thread -------------------------------------------

    def _on_return(self, _channel, method, props, body: bytes) -> None:
        # The broker sends basic.return before the basic.ack of the same message, so the copy is
        # queued here before that ack could make its sender think it was delivered.
        self.returned.append((method.routing_key, body, props))

    def _on_confirm(self, frame) -> None:
        method = frame.method
        tag = method.delivery_tag
        done = {seq for seq in self.unconfirmed if seq <= tag} if method.multiple else {tag}
        self.unconfirmed -= done
        if isinstance(method, pika.spec.Basic.Nack):
            self.refused += len(done)
            log.error("the broker refused %d message(s)", len(done))
        if self.on_confirmed is not None:
            self.on_confirmed()
