"""The inspector: consumes `<prefix>.inspect`, one file at a time per worker; run more processes to go faster.

It is off the critical path: a dossier is marked synced whatever its inspection does, so a failure here is
recorded in the metrics and the service status, never in the dossier's sync state.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from services.inspector.handler import InspectHandler
from shared.broker.consumer import BatchHandler, one_at_a_time
from shared.broker.topology import INSPECT
from shared.service import QueueService, queue_service
from shared.settings import Settings
from shared.storage.objects import ObjectStore


def build(settings: Settings) -> QueueService:
    def handler(engine: Engine) -> BatchHandler:
        return one_at_a_time(InspectHandler(engine, ObjectStore.from_settings(settings), settings.max_file_bytes))

    return queue_service(settings, "inspector", INSPECT, handler, sync_failures=False)
