"""`DONGBO_AMQP_URL` with several brokers: split, shuffled, each password hidden, and a dead address skipped
for a live one on a real broker."""

from __future__ import annotations

import logging

import pika
import pytest

from harness.services import free_port
from shared.broker.connection import broker_urls, connect, describe, parameters
from shared.errors import ConfigError
from shared.logs import redact

THREE = "amqp://u:pw-one@h1:5672/%2F, amqp://u:pw-two@h2:5673/%2F,,amqp://u:pw-three@h3/%2F"


def test_the_list_is_split_in_order_and_blanks_ignored():
    assert broker_urls(THREE) == ["amqp://u:pw-one@h1:5672/%2F", "amqp://u:pw-two@h2:5673/%2F",
                                  "amqp://u:pw-three@h3/%2F"]
    assert broker_urls("amqp://guest:guest@127.0.0.1:5672/%2F") == ["amqp://guest:guest@127.0.0.1:5672/%2F"]
    with pytest.raises(ConfigError, match="DONGBO_AMQP_URL"):
        broker_urls(" , ")


def test_every_address_gets_the_same_settings_and_the_order_is_spread():
    orders = set()
    for _ in range(40):
        found = parameters(THREE, "test", heartbeat=7)
        assert all(p.heartbeat == 7 and p.connection_attempts == 1 and p.blocked_connection_timeout == 300
                   for p in found)
        orders.add(tuple(p.host for p in found))
    assert {order[0] for order in orders} == {"h1", "h2", "h3"}, "clients would all land on one node"
    assert sorted(p.port for p in parameters(THREE, "test")) == [5672, 5672, 5673]


def test_each_password_is_hidden(caplog):
    parameters(THREE, "test")  # registers every address's password
    for password in ("pw-one", "pw-two", "pw-three"):
        assert password not in describe(THREE)
        assert password not in redact(f"failed: {THREE}")
    assert describe(THREE) == "amqp://u:***@h1:5672/%2F, amqp://u:***@h2:5673/%2F, amqp://u:***@h3/%2F"


def test_a_dead_address_is_skipped_for_a_live_one(rabbit_url, caplog):
    """The machine's broker (on this run's vhost) next to a port nobody listens on: every connection lands."""
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    caplog.set_level(logging.INFO, logger="shared.broker.connection")
    for _ in range(6):
        connection = connect(f"{dead},{rabbit_url}", "test", heartbeat=5)
        try:
            assert connection.is_open
            connection.channel().queue_declare("", exclusive=True)
        finally:
            connection.close()
    assert "connected to RabbitMQ at 127.0.0.1" in caplog.text


def test_no_address_answering_is_a_connection_error():
    dead = ",".join(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F" for _ in range(2))
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        connect(dead, "test")
