"""The downloader: N interchangeable workers that stream attachments into the bucket.

Its health is the consumer's (broker connected, loop turning) and one more thing: no file transfer has
outlived its deadline. The consumer's loop keeps turning while every worker thread is stuck, so without
this a downloader whose transfers hang would report healthy forever.
"""

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


class Downloader:
    """The consumer, with a health check that also looks at the transfers in flight."""

    def __init__(self, consumer: Consumer, source: FileSource):
        self.consumer = consumer
        self.source = source

    def run(self) -> None:
        try:
            self.consumer.run()
        finally:
            self.source.close()

    def stop(self) -> None:
        self.consumer.stop()

    def health(self) -> tuple[bool, str]:
        healthy, text = self.consumer.health()
        overdue = self.source.overdue()
        if overdue is not None:
            return False, f"a file transfer has run for {overdue:.0f}s, past DONGBO_FILE_DEADLINE"
        return healthy, text


def build(settings: Settings) -> Downloader:
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
    return Downloader(consumer, source)
