"""The indexer: writes `ho_so` and `tai_lieu` in batches, one transaction each."""

from __future__ import annotations

from services.indexer.handler import IndexHandler
from shared.broker.consumer import Consumer
from shared.broker.topology import INDEX, Topology
from shared.db.engine import make_engine, wait_for_schema
from shared.service import StatusReporter, failure_recorder
from shared.settings import Settings


def build(settings: Settings) -> Consumer:
    engine = make_engine(settings.database_url.get_secret_value())
    wait_for_schema(engine, "indexer")
    reporter = StatusReporter(engine, "indexer")
    consumer = Consumer(
        service="indexer", amqp_url=settings.amqp_url.get_secret_value(), topology=Topology.from_settings(settings),
        stage=INDEX, handle=IndexHandler(engine), batch_size=settings.index_batch_size, batch_wait=0.05,
        heartbeat=settings.heartbeat, on_failure=failure_recorder(engine, "indexer", reporter),
    )
    consumer.on_progress = reporter.progress
    return consumer
