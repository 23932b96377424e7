"""The acker: batches mark-synced calls per unit (size and time limits) and records the synced time."""

from __future__ import annotations

from services.acker.handler import AckHandler
from shared.broker.consumer import Consumer
from shared.broker.topology import ACK, Topology
from shared.db.engine import make_engine, wait_for_schema
from shared.onestop import OneStopClient
from shared.service import StatusReporter, failure_recorder
from shared.settings import Settings


def build(settings: Settings) -> Consumer:
    settings.require("onestop_url", "onestop_username", "onestop_password")
    engine = make_engine(settings.database_url.get_secret_value())
    wait_for_schema(engine, "acker")
    client = OneStopClient.from_settings(settings)
    reporter = StatusReporter(engine, "acker")
    consumer = Consumer(
        service="acker", amqp_url=settings.amqp_url.get_secret_value(), topology=Topology.from_settings(settings),
        stage=ACK, handle=AckHandler(client, engine, settings.ack_batch_size), batch_size=settings.ack_batch_size,
        batch_wait=settings.ack_batch_seconds, heartbeat=settings.heartbeat,
        on_failure=failure_recorder(engine, "acker", reporter),
    )
    consumer.on_progress = reporter.progress
    return consumer
