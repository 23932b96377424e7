"""The downloader's decision for one dossier: store every file, then pass the dossier to the indexer."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from services.downloader.http_fetch import FileSource
from services.downloader.progress import StoredRecorder
from services.downloader.transfer import store_attachment
from shared import observability
from shared.broker.outcome import Delivery, Done
from shared.broker.publisher import NEW_DOSSIER_HEADER
from shared.broker.topology import INDEX
from shared.errors import TooManyFiles
from shared.messages import DossierFetched, DossierStored
from shared.storage import ObjectStore
from shared.storage.keys import object_key

log = logging.getLogger(__name__)


class DownloadHandler:
    def __init__(self, source: FileSource, store: ObjectStore, engine: Engine, *, part_size: int, max_files: int):
        self.source = source
        self.store = store
        self.stored = StoredRecorder(engine)
        self.part_size = part_size
        self.max_files = max_files

    def __call__(self, delivery: Delivery) -> Done:
        dossier = DossierFetched.from_bytes(delivery.body)
        if len(dossier.files) > self.max_files:
            raise TooManyFiles(f"dossier {dossier.mahoso} lists {len(dossier.files)} files (limit {self.max_files})")
        # The same entry listed twice is one file: it has one key.
        unique = {object_key(dossier.madonvi, dossier.mahoso, a): a for a in dossier.files}
        # A dossier the fetcher never handed on before, on its first delivery, has nothing stored yet:
        # skip asking the store. Any later try looks first (an upload again would only repeat the work).
        first_try = (
            bool(delivery.headers.get(NEW_DOSSIER_HEADER)) and not delivery.redelivered and delivery.attempt == 0
        )
        stored = []
        for key, attachment in unique.items():
            item = store_attachment(
                self.source,
                self.store,
                dossier.madonvi,
                dossier.mahoso,
                attachment,
                part_size=self.part_size,
                look_first=not first_try,
                key=key,
            )
            stored.append(item)
        self.stored.add(dossier.mahoso)
        observability.DOSSIERS.labels("downloader").inc()
        log.info(
            "dossier %s: %d files stored",
            dossier.mahoso,
            len(stored),
            extra={"mahoso": dossier.mahoso, "madonvi": dossier.madonvi},
        )
        return Done([(INDEX, DossierStored.of(dossier, stored))])
