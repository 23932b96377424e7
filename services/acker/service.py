"""The acker: batches mark-synced calls per unit (size and time limits) and records the synced time."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from services.acker.handler import AckHandler
from shared.broker.topology import ACK
from shared.onestop import OneStopClient
from shared.service import QueueService, queue_service
from shared.settings import Settings


def build(settings: Settings) -> QueueService:
    client = OneStopClient.from_settings(settings)  # a missing one-stop setting stops the acker before it waits

    def handler(engine: Engine) -> AckHandler:
        return AckHandler(client, engine, settings.ack_batch_size, report_threads=settings.report_concurrency)

    return queue_service(
        settings, "acker", ACK, handler, batch_size=settings.ack_batch_size, batch_wait=settings.ack_batch_seconds,
        handler_threads=settings.report_concurrency,
    )
