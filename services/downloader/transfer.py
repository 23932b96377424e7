"""One attachment from its `url_file` into the bucket: streamed, verified, and idempotent.

The order matters. The object is uploaded, then checked (bytes counted against Content-Length and
against the stored size), and only then tagged complete. A crash or error anywhere before the tag leaves
at most an untagged object, which the next attempt overwrites; a retry after the tag finds the object
complete and skips the upload. So running this twice, or after a crash at any line, stores one object.
"""

from __future__ import annotations

import itertools
import logging
from urllib.parse import quote

from services.downloader.content_type import detect
from services.downloader.http_fetch import CHUNK_SIZE, FileResponse, FileSource
from services.downloader.key_clash import changed_key
from shared import observability
from shared.errors import FileNotFound, IntegrityError, TruncatedBody
from shared.messages import StoredFile, utcnow
from shared.onestop.models import Attachment
from shared.storage import ObjectStore, StoredObject
from shared.storage.keys import object_key

log = logging.getLogger(__name__)


def store_attachment(
    source: FileSource,
    store: ObjectStore,
    madonvi: str,
    mahoso: str,
    attachment: Attachment,
    *,
    part_size: int | None = None,
    look_first: bool = True,
    key: str | None = None,
) -> StoredFile:
    """Stores one attachment (or finds it already stored identically) and describes the stored object.

    `look_first=False` skips the lookup of a stored copy, for a file that cannot have one yet. `key`, when
    the caller has it already, is `object_key(madonvi, mahoso, attachment)`.
    """
    key = key or object_key(madonvi, mahoso, attachment)
    existing = store.find_complete(key) if look_first else None
    try:
        with source.open(attachment.url_file) as response:
            if existing is not None and _same_file(existing, response):
                # Leaving the block closes the body unread: an identical file costs one GET's headers.
                log.debug(
                    "file already stored, skipped: mahoso=%s matailieu=%s key=%s",
                    mahoso,
                    attachment.matailieu,
                    key,
                    extra={"mahoso": mahoso, "madonvi": madonvi},
                )
                observability.FILES.labels("skipped").inc()
                return _stored_file(attachment, existing)
            if existing is not None:
                # Other bytes are archived under this key (an earlier version): never write over them.
                key = changed_key(key, response.etag, response.content_length)
                changed = store.find_complete(key)
                if changed is not None and _same_file(changed, response):
                    return _stored_file(attachment, changed)
                log.warning("file changed at its source, stored under a new key: mahoso=%s matailieu=%s key=%s",
                            mahoso, attachment.matailieu, key, extra={"mahoso": mahoso, "madonvi": madonvi})
            return _upload(store, key, mahoso, attachment, response, part_size)
    except FileNotFound:
        if existing is None:
            raise
        # The copy was verified against this very URL when it was stored; a source deleted since then
        # must not send a dossier whose files are all safe to the dead-letter queue.
        log.warning(
            "source of a stored file is gone, keeping the stored copy: mahoso=%s matailieu=%s key=%s",
            mahoso,
            attachment.matailieu,
            key,
        )
        return _stored_file(attachment, existing)


def _same_file(existing: StoredObject, response: FileResponse) -> bool:
    """Whether the source still serves what is stored: same length, and same ETag where both have one."""
    if response.content_length is None or response.content_length != existing.size:
        return False
    if response.etag and existing.source_etag:
        return _header_safe(response.etag) == existing.source_etag
    return True


def _upload(
    store: ObjectStore, key: str, mahoso: str, attachment: Attachment, response: FileResponse, part_size: int | None
) -> StoredFile:
    chunks = response.iter_chunks(CHUNK_SIZE)
    first = next(chunks, b"")  # the first bytes decide the content type before anything is written
    content_type, mismatch = detect(first, attachment.ten_file)
    if mismatch:
        log.warning(
            "file content does not match its name: mahoso=%s matailieu=%s ten_file=%r is %s",
            mahoso,
            attachment.matailieu,
            attachment.ten_file,
            content_type,
        )
    metadata = {
        "dongbo-content-type": content_type,
        "dongbo-content-type-mismatch": "true" if mismatch else "false",
        "mahoso": _header_safe(mahoso),
        "matailieu": _header_safe(attachment.matailieu),
    }
    if response.etag:
        metadata["source-etag"] = _header_safe(response.etag)
    if attachment.ten_file:
        # Downloads from the archive get the real Vietnamese name back (RFC 6266 / 5987 encoding).
        metadata["Content-Disposition"] = _content_disposition(attachment.ten_file)
    length = response.content_length
    if length is not None and length <= (part_size or store.part_size):
        # A small file (the usual case) is read whole first: checked, then written and tagged at once.
        data = b"".join(itertools.chain([first], chunks))
        if len(data) != length:
            raise TruncatedBody(f"{key}: read {len(data)} of {length} bytes")
        result = store.put_whole(key, data, content_type, metadata)
    else:
        result = store.put_stream(
            key,
            itertools.chain([first], chunks) if first else chunks,
            length=length,
            content_type=content_type,
            part_size=part_size,
            metadata=metadata,
        )
        # The bytes minio read must be the whole source, and the store must hold exactly those bytes.
        if length is not None and result.size != length:
            raise TruncatedBody(f"{key}: read {result.size} of {length} bytes")
        stored_size = store.stat_size(key)
        if stored_size != result.size:
            raise IntegrityError(f"{key}: stored {stored_size} bytes, but {result.size} were sent")
        store.mark_complete(key, result.sha256, result.size)
    observability.FILES.labels("stored").inc()
    observability.BYTES.inc(result.size)
    # Per file at DEBUG: the dossier's own line says what was stored; a line per file under one handler
    # lock shared by every transfer thread was a tenth of a busy downloader's time.
    log.debug(
        "stored file: mahoso=%s matailieu=%s key=%s size=%d sha256=%s",
        mahoso,
        attachment.matailieu,
        key,
        result.size,
        result.sha256,
        extra={"mahoso": mahoso},
    )
    return StoredFile(
        matailieu=attachment.matailieu,
        tentailieu=attachment.tentailieu,
        ten_file=attachment.ten_file,
        url_file=attachment.url_file,
        object_key=key,
        size=result.size,
        sha256=result.sha256,
        content_type=content_type,
        content_type_mismatch=mismatch,
        stored_at=utcnow(),
    )


def _stored_file(attachment: Attachment, existing: StoredObject) -> StoredFile:
    return StoredFile(
        matailieu=attachment.matailieu,
        tentailieu=attachment.tentailieu,
        ten_file=attachment.ten_file,
        url_file=attachment.url_file,
        object_key=existing.key,
        size=existing.size,
        sha256=existing.sha256,
        content_type=existing.content_type,
        content_type_mismatch=existing.metadata.get("dongbo-content-type-mismatch") == "true",
        stored_at=existing.last_modified or utcnow(),
    )


def _header_safe(value: str, limit: int = 256) -> str:
    """Metadata travels as HTTP headers (S3 allows 2 KB of it): ASCII only, bounded."""
    text = value if value.isascii() and value.isprintable() else quote(value, safe="", errors="replace")
    return text[:limit]


def _content_disposition(name: str, limit: int = 900) -> str:
    """`attachment; filename*=UTF-8''...` with the name cut (keeping its extension) to fit a header."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 10:
        stem, extension = name, ""
    tail = quote("." + extension, safe="", errors="replace") if extension else ""
    budget = limit - len(tail)
    pieces = []
    for char in stem:
        piece = quote(char, safe="", errors="replace")
        if len(piece) > budget:
            break
        pieces.append(piece)
        budget -= len(piece)
    return "attachment; filename*=UTF-8''" + "".join(pieces) + tail
