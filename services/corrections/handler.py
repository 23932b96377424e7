"""The corrections worker's decision for one correction: change the one-stop system once, record the outcome.

The call to the one-stop system (`capnhatfiletheoloaitailieu` / `xoafiletheoloaitailieu`) has no
idempotency key, so the worker checks before it acts: it reads the dossier as the one-stop system holds it
now (the date-range sync call for the day the dossier was received) and skips the call when the wanted
state is already there — the only file of that type has exactly the replacement's bytes and name, or no
file of that type is left. A retry after the call succeeded (a crash before the acknowledgement, a
redelivery, a replay, the same command run twice) therefore changes the one-stop system no more.

A refusal (a 4xx, or an answer without status 200) is final: the correction is recorded `refused` with
what the one-stop system said and dead-lettered as `correction-refused`. Anything that may heal (the
one-stop system down, the store or database briefly away) raises and is retried with the configured delays.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import Iterator

import sqlalchemy.exc
from minio.error import S3Error
from sqlalchemy import select
from sqlalchemy.engine import Engine

from services.corrections import records
from services.downloader.http_fetch import FileSource
from shared.broker.outcome import Delivery, Done
from shared.db.dossier_locks import held_for_correction
from shared.db.models import HoSo
from shared.errors import (
    CorrectionRefused,
    CorrectionUnreadable,
    DatabaseUnavailable,
    OneStopRefused,
    StorageUnavailable,
)
from shared.messages import CorrectionRequested
from shared.onestop import OneStopClient
from shared.onestop.models import Attachment, Dossier
from shared.storage import ObjectStore
from shared.storage.objects import MISSING

log = logging.getLogger(__name__)

ho_so = HoSo.__table__  # type: ignore[attr-defined]


class CorrectionHandler:
    def __init__(self, client: OneStopClient, engine: Engine, store: ObjectStore, source: FileSource):
        self.client = client
        self.engine = engine
        self.store = store
        self.source = source

    def __call__(self, delivery: Delivery) -> Done:
        message = CorrectionRequested.from_bytes(delivery.body)
        extra = {"mahoso": message.mahoso, "madonvi": message.madonvi}
        try:
            row = records.start_attempt(self.engine, message)
        except sqlalchemy.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"database: {exc.orig or exc}") from None
        if row.status == records.APPLIED:
            log.info("correction %s already applied; nothing to do", message.correction_id, extra=extra)
            return Done()
        content = self._content(message) if message.action == "replace" else None
        try:
            # No batch of the acker may mark this dossier between our look at the one-stop system and the
            # outcome recorded below (shared/db/dossier_locks.py): its mark would undo the correction's.
            with held_for_correction(self.engine, message.mahoso):
                return self._apply(message, content, extra)
        except sqlalchemy.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"database: {exc.orig or exc}") from None

    def _apply(self, message: CorrectionRequested, content: bytes | None, extra: dict) -> Done:
        current = self._current_files(message)
        if current is not None and self._in_place(message, current):
            records.finish(self.engine, message.correction_id, records.APPLIED,
                           "already in place on the one-stop system; not sent again")
            log.info("correction %s (%s %s) already in place on the one-stop system", message.correction_id,
                     message.action, message.matailieu, extra=extra)
            return Done()
        url_file = None
        try:
            if content is not None:
                url_file = self.client.replace_file(message.madonvi, message.mahoso, message.matailieu,
                                                    message.ten_file, content)
            else:
                self.client.delete_file(message.madonvi, message.mahoso, message.matailieu)
        except OneStopRefused as exc:
            said = exc.detail or str(exc)
            records.finish(self.engine, message.correction_id, records.REFUSED, said)
            raise CorrectionRefused(f"correction {message.correction_id} ({message.action} {message.matailieu} "
                                    f"of {message.mahoso}) refused by the one-stop system: {said}") from None
        except Exception as exc:
            records.note_error(self.engine, message.correction_id, f"{type(exc).__name__}: {exc}")
            raise
        records.finish(self.engine, message.correction_id, records.APPLIED, "applied", url_file)
        log.info("correction %s applied: %s %s of %s", message.correction_id, message.action, message.matailieu,
                 message.mahoso, extra=extra)
        return Done()

    def _content(self, message: CorrectionRequested) -> bytes:
        """The replacement's bytes from the archive, checked against what the command recorded."""
        if not message.object_key:
            raise CorrectionUnreadable(f"correction {message.correction_id}: a replacement without an object key")
        try:
            response = self.store.client.get_object(self.store.bucket, message.object_key)
            try:
                data = response.read()
            finally:
                response.close()
                response.release_conn()
        except S3Error as exc:
            if exc.code in MISSING:
                raise CorrectionUnreadable(f"correction {message.correction_id}: {message.object_key} is not in "
                                           "the archive") from None
            raise StorageUnavailable(f"{message.object_key}: {exc.code}") from None
        except Exception as exc:
            raise StorageUnavailable(f"{message.object_key}: {type(exc).__name__}: {exc}") from None
        if hashlib.sha256(data).hexdigest() != message.sha256 or (message.size is not None and len(data) !=
                                                                    message.size):
            raise CorrectionUnreadable(f"correction {message.correction_id}: {message.object_key} does not hold "
                                       "the bytes recorded for it")
        return data

    def _current_files(self, message: CorrectionRequested) -> list[Attachment] | None:
        """The dossier's files of that type as the one-stop system lists them now; None when it cannot say."""
        try:
            with self.engine.connect() as connection:
                ngaynhan = connection.execute(select(ho_so.c.ngaynhan)
                                              .where(ho_so.c.mahoso == message.mahoso)).scalar()
        except sqlalchemy.exc.OperationalError as exc:
            raise DatabaseUnavailable(f"database: {exc.orig or exc}") from None
        if ngaynhan is None:
            return None
        found: Dossier | None = None
        for item in self.client.fetch_dossiers(message.madonvi, ngaynhan, ngaynhan):
            if isinstance(item, Dossier) and item.mahoso == message.mahoso:
                found = item  # read to the end: the response is closed when the stream ends
        if found is None:
            return None
        return [a for a in found.file_dinh_kem if a.matailieu == message.matailieu]

    def _in_place(self, message: CorrectionRequested, current: list[Attachment]) -> bool:
        if message.action == "delete":
            return not current
        if len(current) != 1 or _nfc(current[0].ten_file) != _nfc(message.ten_file):
            return False
        return self._sha256_of(current[0].url_file) == message.sha256

    def _sha256_of(self, url: str) -> str:
        digest = hashlib.sha256()
        with self.source.open(url) as response:
            for chunk in _chunks(response):
                digest.update(chunk)
        return digest.hexdigest()


def _chunks(response) -> Iterator[bytes]:
    yield from response.iter_chunks(256 * 1024)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text or "")
