"""The indexer: writes `ho_so` and `tai_lieu` in batches, one transaction each."""

from __future__ import annotations

from services.indexer.handler import IndexHandler
from shared.broker.topology import INDEX
from shared.service import QueueService, queue_service
from shared.settings import Settings


def build(settings: Settings) -> QueueService:
    return queue_service(
        settings, "indexer", INDEX, IndexHandler, batch_size=settings.index_batch_size, batch_wait=0.05
    )
