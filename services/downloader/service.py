"""The downloader: N interchangeable workers that stream attachments into the bucket."""

from __future__ import annotations

from datetime import timedelta

from services.downloader.handler import DownloadHandler
from services.downloader.http_fetch import FileSource
from shared.broker.consumer import Consumer, one_at_a_time
from shared.broker.topology import DOWNLOAD, Topology
from shared.db.engine import make_engine, wait_for_schema
from shared.service import StatusReporter, failure_recorder, wait_until_ready
from shared.settings import Settings
from shared.storage import ObjectStore


def build(settings: Settings) -> Consumer:
    if not settings.file_hosts:
        settings.require("allowed_file_hosts")
    engine = make_engine(settings.database_url.get_secret_value())
    wait_for_schema(engine, "downloader")
    store = ObjectStore.from_settings(settings)
    wait_until_ready(store.ensure_bucket, "the object store")
    # A downloader killed mid-upload leaves parts behind; no upload runs longer than a day.
    wait_until_ready(lambda: store.abort_stale_uploads(older_than=timedelta(days=1)), "the object store")
    source = FileSource.from_settings(settings)
    handler = DownloadHandler(
        source, store, engine, part_size=settings.part_size, max_files=settings.max_files_per_dossier
    )
    reporter = StatusReporter(engine, "downloader")
    consumer = Consumer(
        service="downloader",
        amqp_url=settings.amqp_url.get_secret_value(),
        topology=Topology.from_settings(settings),
        stage=DOWNLOAD,
        handle=one_at_a_time(handler),
        concurrency=settings.download_concurrency,
        heartbeat=settings.heartbeat,
        on_failure=failure_recorder(engine, "downloader", reporter),
    )
    consumer.on_progress = reporter.progress
    return consumer
