"""The object store (S3 through `minio`): streamed uploads with bounded memory, and a completeness mark.

An object counts as stored only when it carries the tag `sha256` (with `size`), which is set after the
upload has been verified. An object without it — a crash between upload and verification, a source that
changed mid-way — is simply uploaded again, so "is it stored?" never trusts a half-done write.

A killed upload leaves its multipart parts behind, invisible and billed; `shared.storage.hygiene` cleans
them (a lifecycle rule set by `ensure_bucket`, and `abort_stale_uploads` when the downloader starts).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO, cast

import urllib3
from minio import Minio
from minio.commonconfig import Tags
from minio.datatypes import Object
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from shared.errors import DongboError, IntegrityError, StorageUnavailable, TruncatedBody
from shared.storage import hygiene
from shared.storage.hygiene import LIFECYCLE_RULE_ID  # noqa: F401 - importable from here as before the split

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024**2  # S3's smallest multipart part
MISSING = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchVersion", "ResourceNotFound"})


@dataclass(frozen=True)
class StoredObject:
    """An object that is complete: uploaded, verified and tagged."""

    key: str
    size: int
    sha256: str
    content_type: str
    last_modified: datetime | None
    etag: str | None
    metadata: dict[str, str] = field(default_factory=dict)  # user metadata, keys lower case, no x-amz-meta-

    @property
    def source_etag(self) -> str | None:
        return self.metadata.get("source-etag")


@dataclass(frozen=True)
class PutResult:
    """What an upload wrote, as counted and hashed from the bytes minio read."""

    key: str
    size: int
    sha256: str
    etag: str | None


class _HashingReader:
    """The file-like object minio reads: pulls chunks on demand, hashing and counting as they pass.

    `read(n)` returns up to n bytes and keeps at most one chunk of leftover, so memory stays at about
    the part minio is assembling plus one chunk. With a known `length` it refuses to end early (a short
    source must fail, not be padded out by an error minio would raise later).
    """

    def __init__(self, chunks: Iterator[bytes], length: int | None):
        self._chunks = iter(chunks)
        self._length = length
        self._leftover = b""
        self._eof = False
        self.size = 0
        self._sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        have = 0
        while size < 0 or have < size:
            if self._leftover:
                chunk, self._leftover = self._leftover, b""
            elif self._eof:
                break
            else:
                following = next(self._chunks, None)
                if following is None:
                    self._eof = True
                    break
                chunk = following
            if size >= 0 and have + len(chunk) > size:
                cut = size - have
                chunk, self._leftover = chunk[:cut], chunk[cut:]
            parts.append(chunk)
            have += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        del parts  # the pieces go before minio starts the next part, not after
        self._sha.update(data)
        self.size += len(data)
        if self._eof and self._length is not None and self.size < self._length:
            raise TruncatedBody(f"source ended at {self.size} of {self._length} bytes")
        return data

    def exhausted(self) -> bool:
        """True when the source has nothing beyond what was read (minio stops at `length`)."""
        if self._leftover:
            return False
        if not self._eof:
            for chunk in self._chunks:
                if chunk:
                    self._leftover = chunk
                    return False
            self._eof = True
        return True

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


class ObjectStore:
    """One bucket of an S3 server."""

    def __init__(self, client: Minio, bucket: str, part_size: int = 8 * 1024**2):
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part size must be at least {MIN_PART_SIZE} bytes")
        self.client = client
        self.bucket = bucket
        self.part_size = part_size

    @classmethod
    def from_settings(cls, settings) -> ObjectStore:
        # minio's own default pool, with our connect timeout: retries 5xx with back-off, reuses connections.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=settings.connect_timeout, read=max(settings.read_timeout, 300.0)),
            maxsize=max(10, settings.download_concurrency * 2),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=http,
        )
        return cls(client, settings.s3_bucket, part_size=settings.part_size)

    # -- the bucket ------------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Creates the bucket if missing and makes sure it aborts forgotten multipart uploads."""
        with _storage_errors(f"bucket {self.bucket}"):
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                    log.info("created bucket %s", self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise  # another downloader creating it at the same moment is fine
        self._ensure_lifecycle()

    def _ensure_lifecycle(self) -> None:
        """Sets the abort rule; a server without lifecycle support only warns."""
        try:
            hygiene.add_abort_rule(self.client, self.bucket)
        except (S3Error, ServerError, InvalidResponseError, ValueError) as exc:
            log.warning(
                "bucket %s: could not set the lifecycle rule that aborts incomplete uploads (%s); "
                "stale uploads are still aborted when the downloader starts", self.bucket, _brief(exc),
            )

    def abort_stale_uploads(self, older_than: timedelta, prefix: str = "") -> int:
        """Aborts multipart uploads started more than `older_than` ago; returns how many."""
        with _storage_errors(f"bucket {self.bucket}"):
            return hygiene.abort_stale_uploads(self.client, self.bucket, older_than, prefix)

    # -- objects ---------------------------------------------------------------------------------

    def stat_with_tags(self, key: str) -> tuple[Object, dict[str, str]] | None:
        """What S3 says about the object at `key` without reading it, and its tags; None when there is none."""
        with _storage_errors(key):
            try:
                stat = self.client.stat_object(self.bucket, key)
                return stat, dict(self.client.get_object_tags(self.bucket, key) or {})
            except S3Error as exc:
                if exc.code in MISSING:
                    return None
                raise

    def find_complete(self, key: str) -> StoredObject | None:
        """The object at `key` if it is complete (tagged `sha256` and `size` matching it), else None."""
        found = self.stat_with_tags(key)
        if found is None:
            return None
        stat, tags = found
        sha256 = tags.get("sha256", "")
        if len(sha256) != 64 or stat.size is None or tags.get("size") != str(stat.size):
            return None
        metadata = _user_metadata(stat.metadata)
        return StoredObject(
            key=key,
            size=int(stat.size),
            sha256=sha256,
            content_type=metadata.get("dongbo-content-type") or stat.content_type or "application/octet-stream",
            last_modified=stat.last_modified,
            etag=stat.etag,
            metadata=metadata,
        )

    def stat_size(self, key: str) -> int | None:
        """The size of whatever object is at `key` (complete or not), or None."""
        with _storage_errors(key):
            try:
                size = self.client.stat_object(self.bucket, key).size
                return None if size is None else int(size)
            except S3Error as exc:
                if exc.code in MISSING:
                    return None
                raise

    def put_stream(
        self,
        key: str,
        chunks: Iterator[bytes],
        length: int | None,
        content_type: str,
        part_size: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> PutResult:
        """Uploads a stream part by part (one part in memory at a time) and returns its size and SHA-256.

        With a known `length` minio sends exactly that many bytes; with None it sends until the chunks
        end. If the chunks raise, minio aborts the multipart upload and the error comes out unchanged.
        """
        part_size = part_size or self.part_size
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part size must be at least {MIN_PART_SIZE} bytes")
        reader = _HashingReader(chunks, length)
        with _storage_errors(key):
            result = self.client.put_object(
                self.bucket,
                key,
                cast(BinaryIO, reader),  # minio only calls read(size)
                length if length is not None else -1,
                content_type=content_type,
                metadata=_metadata(metadata),
                part_size=part_size,
                num_parallel_uploads=1,  # parallel parts would hold several parts in memory at once
            )
        if not reader.exhausted():
            raise IntegrityError(f"source of {key} sent more than its announced {length} bytes")
        return PutResult(key=key, size=reader.size, sha256=reader.sha256, etag=result.etag)

    def mark_complete(self, key: str, sha256: str, size: int, extra: dict[str, str] | None = None) -> None:
        """Tags a verified object: from now on `find_complete` trusts it."""
        with _storage_errors(key):
            self.client.set_object_tags(self.bucket, key, _complete_tags(sha256, size, extra))

    def put_whole(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None) -> PutResult:
        """Stores a small file already read and checked whole, tagged complete in the same request.

        One request instead of an upload, a check and a tagging: the file's bytes are all here, their
        SHA-256 is known before anything is written, and the request is signed with it, so the store
        either keeps exactly these bytes, tags and all, or nothing.
        """
        sha256 = hashlib.sha256(data).hexdigest()
        with _storage_errors(key):
            result = self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type,
                                            metadata=_metadata(metadata), tags=_complete_tags(sha256, len(data)))
        return PutResult(key=key, size=len(data), sha256=sha256, etag=result.etag)

    def remove(self, key: str) -> None:
        with _storage_errors(key):
            self.client.remove_object(self.bucket, key)


def _metadata(metadata: dict[str, str] | None) -> dict[str, str | list[str] | tuple[str]] | None:
    """Our metadata in the type minio's signature asks for (it also takes lists)."""
    return dict(metadata) if metadata else None


def _complete_tags(sha256: str, size: int, extra: dict[str, str] | None = None) -> Tags:
    tags = Tags.new_object_tags()
    for name, value in (extra or {}).items():
        tags[name] = value
    tags["sha256"] = sha256
    tags["size"] = str(size)
    return tags


@contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    """Turns minio and network failures into StorageUnavailable; our own errors pass through unchanged.

    Every store failure counts as transient: a store that is down, full or misconfigured is never the
    fault of the dossier being stored, so its message waits and retries instead of being dead-lettered.
    """
    try:
        yield
    except DongboError:
        raise
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise StorageUnavailable(f"object store failed on {what}: {_brief(exc)}") from exc


def _brief(exc: BaseException) -> str:
    if isinstance(exc, S3Error):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, ServerError):
        return f"HTTP {exc.status_code}"
    return type(exc).__name__


def _user_metadata(headers) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if name.lower().startswith("x-amz-meta-"):
            result[name[len("x-amz-meta-"):].lower()] = value
    return result
