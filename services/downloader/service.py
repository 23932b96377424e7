"""The downloader: N interchangeable workers that stream attachments into the bucket.

Its health is the consumer's (broker connected, loop turning) and one more thing: no file transfer has
outlived its deadline. The consumer's loop keeps turning while every worker thread is stuck, so without
this a downloader whose transfers hang would report healthy forever.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from services.downloader.handler import DownloadHandler
from services.downloader.http_fetch import FileSource
from shared.broker.consumer import BatchHandler, one_at_a_time
from shared.broker.topology import DOWNLOAD
from shared.service import QueueService, queue_service, wait_until_ready
from shared.settings import Settings
from shared.storage import ObjectStore


class Downloader:
    """The queue service, with a health check that also looks at the transfers in flight."""

    def __init__(self, service: QueueService, source: FileSource):
        self.service = service
        self.source = source

    def run(self) -> None:
        try:
            self.service.run()
        finally:
            self.source.close()

    def stop(self) -> None:
        self.service.stop()

    def health(self) -> tuple[bool, str]:
        healthy, text = self.service.health()
        overdue = self.source.overdue()
        if overdue is not None:
            return False, f"a file transfer has run for {overdue:.0f}s, past DONGBO_FILE_DEADLINE"
        return healthy, text


def build(settings: Settings) -> Downloader:
    settings.required_file_hosts()  # without any, every attachment would be refused
    source = FileSource.from_settings(settings)

    def handler(engine: Engine) -> BatchHandler:
        store = ObjectStore.from_settings(settings)
        wait_until_ready(store.ensure_bucket, "the object store")
        # A downloader killed mid-upload leaves parts behind; no upload runs longer than a day.
        wait_until_ready(lambda: store.abort_stale_uploads(older_than=timedelta(days=1)), "the object store")
        limits = {"part_size": settings.part_size, "max_files": settings.max_files_per_dossier}
        return one_at_a_time(DownloadHandler(source, store, engine, **limits))

    service = queue_service(settings, "downloader", DOWNLOAD, handler, concurrency=settings.download_concurrency)
    return Downloader(service, source)
