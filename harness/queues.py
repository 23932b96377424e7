"""Looking into a test's queues: every message of a queue, taken or left in place."""

from __future__ import annotations

import pika

from shared.broker.outcome import REASON_HEADER
from shared.broker.publisher import MAHOSO_HEADER
from shared.broker.topology import WORK_QUEUES, Topology


def messages(rabbit_url: str, queue: str, *, remove: bool = False) -> list[tuple[dict, bytes]]:
    """(headers, body) of every message in `queue`. Left in place unless `remove`: they are taken without an
    acknowledgement and go back when the connection closes."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbit_url))
    try:
        return take(connection.channel(), queue, remove=remove)
    finally:
        connection.close()


def take(channel, queue: str, *, remove: bool = True) -> list[tuple[dict, bytes]]:
    """(headers, body) of every message in `queue` on an open channel; removed unless `remove=False`."""
    found = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=remove)
        if method is None:
            return found
        found.append((props.headers or {}, body))


def dead_letters(rabbit_url: str, topology: Topology) -> list[tuple[object, str]]:
    """(mahoso header as sent, reason) of every message in every stage's dead-letter queue, left in place."""
    return [
        (headers.get(MAHOSO_HEADER), str(headers.get(REASON_HEADER)))
        for stage in WORK_QUEUES
        for headers, _body in messages(rabbit_url, topology.dead_letter_queue(stage))
    ]
