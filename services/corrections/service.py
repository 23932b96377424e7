"""The corrections worker: consumes `<prefix>.correct`, one correction at a time, with the same delivery
rules as the other stages (acknowledged after the outcome is recorded, retried with the configured delays,
dead-lettered with its reason, replayed with `dongbo dlq replay --queue correct`)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from services.corrections import records
from services.corrections.handler import CorrectionHandler
from services.downloader.http_fetch import FileSource
from shared.broker.consumer import BatchHandler, one_at_a_time
from shared.broker.outcome import DeadLetter, Decision, Delivery
from shared.broker.topology import CORRECT
from shared.messages import CorrectionRequested
from shared.onestop import OneStopClient
from shared.service import FailureHook, QueueService, queue_service, wait_until_ready
from shared.settings import Settings
from shared.storage import ObjectStore


def build(settings: Settings) -> QueueService:
    settings.onestop()  # a missing one-stop setting stops the worker at start

    def handler(engine: Engine) -> BatchHandler:
        store = ObjectStore.from_settings(settings)
        wait_until_ready(store.ensure_bucket, "the object store")
        client, source = OneStopClient.from_settings(settings), FileSource.from_settings(settings)
        return one_at_a_time(CorrectionHandler(client, engine, store, source))

    # A failed correction says nothing about the dossier's own sync: `hieu_chinh` records it, not sync_state.
    return queue_service(settings, "corrections", CORRECT, handler, sync_failures=False,
                         record_failure=_failure_recorder)


def _failure_recorder(engine: Engine) -> FailureHook:
    """Records a correction that was dead-lettered in `hieu_chinh` (a refusal was recorded with its answer)."""

    def record(delivery: Delivery, decision: Decision) -> None:
        if not isinstance(decision, DeadLetter) or decision.reason == "correction-refused":
            return
        try:
            message = CorrectionRequested.from_bytes(delivery.body)
        except Exception:  # a body that is no correction: the dead letter itself tells the story
            return
        records.finish(engine, message.correction_id, records.FAILED, f"{decision.reason}: {decision.error}")

    return record
