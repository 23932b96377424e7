"""Opening a RabbitMQ connection the way every dongbo process needs it.

pika connections are not thread-safe: each one belongs to the thread that opened it. Heartbeats keep
an idle link alive and let both sides notice a dead one; `blocked_connection_timeout` stops a publisher
from hanging forever when the broker blocks publishers (disk or memory alarm).

`DONGBO_AMQP_URL` may name several brokers (the nodes of one cluster), comma-separated. Every process
opens its connections here, so every service and command fails over between them: pika tries the
addresses one after the other and keeps the first that answers. The order is shuffled on every call, so
that many clients spread over the nodes instead of all landing on the first one, and a client whose
node went away lands on another at its next try.
"""

from __future__ import annotations

import logging
import random
import socket

import pika
import pika.exceptions

from shared.errors import ConfigError
from shared.logs import add_url_secret, redact_url

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


def broker_urls(amqp_url: str) -> list[str]:
    """The addresses in `DONGBO_AMQP_URL`, in the order written (blank entries ignored)."""
    urls = [part.strip() for part in amqp_url.split(",") if part.strip()]
    if not urls:
        raise ConfigError("DONGBO_AMQP_URL: no broker address given")
    return urls


def describe(amqp_url: str) -> str:
    """Every address of `DONGBO_AMQP_URL` for a log line, each with its password hidden."""
    return ", ".join(redact_url(url) for url in broker_urls(amqp_url))


def parameters(amqp_url: str, name: str, heartbeat: int = 60) -> list[pika.URLParameters]:
    """One pika parameter set per broker address, shuffled."""
    found = []
    for url in broker_urls(amqp_url):
        # Each password is hidden from log lines on its own: the whole list is not one URL.
        add_url_secret(url)
        params = pika.URLParameters(url)
        params.heartbeat = heartbeat
        params.blocked_connection_timeout = 300
        # One attempt per address: the next address is the retry, and the caller's loop backs off
        # once every address has refused.
        params.connection_attempts = 1
        params.socket_timeout = 10
        params.client_properties = {"connection_name": f"dongbo-{name}@{socket.gethostname()}"}
        found.append(params)
    random.shuffle(found)
    return found


def connect(amqp_url: str, name: str, heartbeat: int = 60) -> pika.BlockingConnection:
    """A connection to the first broker of `amqp_url` (tried in shuffled order) that answers."""
    candidates = parameters(amqp_url, name, heartbeat)
    connection = pika.BlockingConnection(candidates if len(candidates) > 1 else candidates[0])
    if len(candidates) > 1:
        # Which node a process landed on matters when one of them is stopped; one line per connection.
        params = connection._impl.params
        log.info("%s: connected to RabbitMQ at %s:%s", name, params.host, params.port)
    return connection
