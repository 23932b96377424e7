"""The downloader: N interchangeable workers that stream attachments into the bucket."""

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


def build(settings: Settings) -> QueueService:
    settings.required_file_hosts()  # without any, every attachment would be refused

    def handler(engine: Engine) -> BatchHandler:
        store = ObjectStore.from_settings(settings)
        wait_until_ready(store.ensure_bucket, "the object store")
        # A downloader killed mid-upload leaves parts behind; no upload runs longer than a day.
        wait_until_ready(lambda: store.abort_stale_uploads(older_than=timedelta(days=1)), "the object store")
        source = FileSource.from_settings(settings)
        limits = {"part_size": settings.part_size, "max_files": settings.max_files_per_dossier}
        return one_at_a_time(DownloadHandler(source, store, engine, **limits))

    return queue_service(settings, "downloader", DOWNLOAD, handler, concurrency=settings.download_concurrency)
