"""A broker session: one connection, its channel with the whole topology declared, and a confirming publisher.

Every process that talks to RabbitMQ (the queue services, the fetcher, `dongbo backfill`, `dongbo dlq`) opens
one this way, so that they all declare the same queues and publish with confirms. Closing is quiet: a
connection that is already gone has nothing left to close.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import pika
from pika.adapters.blocking_connection import BlockingChannel

from shared.broker.connection import CONNECTION_ERRORS, connect
from shared.broker.publisher import Publisher
from shared.broker.topology import Topology


@dataclass
class BrokerSession:
    connection: pika.BlockingConnection
    channel: BlockingChannel
    publisher: Publisher

    @classmethod
    def open(
        cls,
        amqp_url: str,
        name: str,
        topology: Topology,
        *,
        heartbeat: int = 60,
        on_confirmed: Callable[[], None] | None = None,
    ) -> BrokerSession:
        """Connects, declares the topology and selects confirm mode; raises a CONNECTION_ERRORS error if any fails."""
        connection = connect(amqp_url, name, heartbeat)
        try:
            channel = connection.channel()
            topology.declare(channel)
            publisher = Publisher(channel, topology, on_confirmed=on_confirmed).open()
        except BaseException:
            _close(connection)
            raise
        return cls(connection, channel, publisher)

    def close(self) -> None:
        _close(self.connection)

    def __enter__(self) -> BrokerSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _close(connection: pika.BlockingConnection) -> None:
    if connection.is_open:
        with contextlib.suppress(*CONNECTION_ERRORS):
            connection.close()
