"""The inspector: consumes `<prefix>.inspect`, one file at a time per worker; run more processes to go faster."""

from __future__ import annotations

from services.inspector.handler import InspectHandler
from shared.broker.consumer import Consumer, one_at_a_time
from shared.broker.topology import INSPECT, Topology
from shared.db.engine import make_engine, wait_for_schema
from shared.service import StatusReporter
from shared.settings import Settings
from shared.storage.objects import ObjectStore


def build(settings: Settings) -> Consumer:
    engine = make_engine(settings.database_url.get_secret_value())
    wait_for_schema(engine, "inspector")
    store = ObjectStore.from_settings(settings)
    reporter = StatusReporter(engine, "inspector")
    consumer = Consumer(
        service="inspector", amqp_url=settings.amqp_url.get_secret_value(), topology=Topology.from_settings(settings),
        stage=INSPECT, handle=one_at_a_time(InspectHandler(engine, store, settings.max_file_bytes)),
        heartbeat=settings.heartbeat, on_failure=_failures_only_logged(engine, reporter),
    )
    consumer.on_progress = reporter.progress
    return consumer


def _failures_only_logged(engine, reporter):
    """An inspection failing says nothing about the dossier's sync: only the service status records it."""
    from shared import observability
    from shared.broker.outcome import DeadLetter

    def record(delivery, decision) -> None:
        final = isinstance(decision, DeadLetter)
        observability.FAILURES.labels("inspector", decision.reason, "dead-letter" if final else "retry").inc()
        reporter.error(f"{decision.reason}: {decision.error}")

    return record
