"""Opening a RabbitMQ connection the way every dongbo process needs it.

pika connections are not thread-safe: each one belongs to the thread that opened it. Heartbeats keep
an idle link alive and let both sides notice a dead one; `blocked_connection_timeout` stops a publisher
from hanging forever when the broker blocks publishers (disk or memory alarm).
"""

from __future__ import annotations

import logging
import socket

import pika
import pika.exceptions

log = logging.getLogger(__name__)

# Errors after which the connection (or its channel) is gone and must be opened anew.
CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
    ConnectionError,
    socket.error,
)


def connect(amqp_url: str, name: str, heartbeat: int = 60) -> pika.BlockingConnection:
    params = pika.URLParameters(amqp_url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 300
    params.connection_attempts = 1
    params.socket_timeout = 10
    params.client_properties = {"connection_name": f"dongbo-{name}@{socket.gethostname()}"}
    return pika.BlockingConnection(params)
