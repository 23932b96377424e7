"""Publishing with publisher confirms, persistent delivery and `mandatory=True`.

A publish returns only once the broker has taken responsibility for the message. A message that no
queue would take (its queue was deleted) comes back as unroutable: the topology is declared again and
the publish retried once, so a deleted queue costs a moment, not a message.
"""

from __future__ import annotations

import logging
from typing import Any

import pika
import pika.exceptions

from shared.broker.topology import Topology
from shared.messages import Message

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-dongbo-attempt"
MAHOSO_HEADER = "x-dongbo-mahoso"
MADONVI_HEADER = "x-dongbo-madonvi"


def properties(message: Message | None, headers: dict[str, Any] | None = None) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        type=message.kind if message is not None else None,
        headers=headers or {},
    )


class Publisher:
    """Publishes on one channel in confirm mode; used only from the thread that owns its connection."""

    def __init__(self, channel, topology: Topology):
        self.channel = channel
        self.topology = topology
        channel.confirm_delivery()

    def publish(self, queue: str, message: Message, headers: dict[str, Any] | None = None) -> None:
        # The dossier's keys ride in the headers too, so logs and `dongbo dlq` never parse a body.
        headers = {MAHOSO_HEADER: message.mahoso, MADONVI_HEADER: message.madonvi, **(headers or {})}
        self.publish_raw(queue, message.to_bytes(), properties(message, headers))

    def publish_raw(self, queue: str, body: bytes, props: pika.BasicProperties) -> None:
        try:
            self.channel.basic_publish("", queue, body, props, mandatory=True)
        except pika.exceptions.UnroutableError:
            log.warning("queue %s was missing; declaring the topology again", queue)
            self.topology.declare(self.channel)
            self.channel.basic_publish("", queue, body, props, mandatory=True)
