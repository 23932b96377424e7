"""The corrections worker: consumes `<prefix>.correct`, one correction at a time, with the same delivery
rules as the other stages (acknowledged after the outcome is recorded, retried with the configured delays,
dead-lettered with its reason, replayed with `dongbo dlq replay --queue correct`)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from services.corrections import records
from services.corrections.handler import CorrectionHandler
from services.downloader.http_fetch import FileSource
from shared import observability
from shared.broker.consumer import Consumer, one_at_a_time
from shared.broker.outcome import DeadLetter
from shared.broker.topology import CORRECT, Topology
from shared.db.engine import make_engine, wait_for_schema
from shared.messages import CorrectionRequested
from shared.onestop import OneStopClient
from shared.service import StatusReporter, wait_until_ready
from shared.settings import Settings
from shared.storage import ObjectStore


def build(settings: Settings) -> Consumer:
    settings.require("onestop_url", "onestop_username", "onestop_password")
    engine = make_engine(settings.database_url.get_secret_value())
    wait_for_schema(engine, "corrections")
    store = ObjectStore.from_settings(settings)
    wait_until_ready(store.ensure_bucket, "the object store")
    client, source = OneStopClient.from_settings(settings), FileSource.from_settings(settings)
    handler = CorrectionHandler(client, engine, store, source)
    reporter = StatusReporter(engine, "corrections")
    consumer = Consumer(
        service="corrections", amqp_url=settings.amqp_url.get_secret_value(), topology=Topology.from_settings(settings),
        stage=CORRECT, handle=one_at_a_time(handler), heartbeat=settings.heartbeat,
        on_failure=_failure_recorder(engine, reporter),
    )
    consumer.on_progress = reporter.progress
    return consumer


def _failure_recorder(engine: Engine, reporter: StatusReporter):
    """Records a failed correction in `hieu_chinh`; unlike the dossier stages', it leaves `sync_state`
    alone: a correction that failed says nothing about the dossier's own sync."""

    def record(delivery, decision) -> None:
        final = isinstance(decision, DeadLetter)
        observability.FAILURES.labels("corrections", decision.reason, "dead-letter" if final else "retry").inc()
        reporter.error(f"{decision.reason}: {decision.error}")
        try:
            message = CorrectionRequested.from_bytes(delivery.body)
        except Exception:  # a body that is no correction: the dead letter itself tells the story
            return
        if final and decision.reason != "correction-refused":  # a refusal was recorded with the answer
            records.finish(engine, message.correction_id, records.FAILED, f"{decision.reason}: {decision.error}")

    return record
