"""Reading stored objects back: streamed in chunks, paced by a token bucket, hashed as they pass.

Memory stays at one chunk whatever the object's size. The pace (`--max-rate`) keeps an audit of a large
archive from starving the downloaders of the object store's bandwidth.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import urllib3
from minio.error import MinioException, S3Error

from shared.errors import StorageUnavailable
from shared.storage.objects import MISSING, ObjectStore

CHUNK = 256 * 1024


class ObjectMissing(Exception):
    """No object at the key."""


class TokenBucket:
    """At most `rate` bytes a second on average, with bursts of at most `burst` bytes.

    A reader takes the bytes it just read; when that puts the bucket in debt it sleeps until the debt is
    paid, so the long-run rate is exact whatever the chunk size. `rate=None` means no limit.
    """

    def __init__(self, rate: float | None, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate is not None and rate <= 0:
            raise ValueError("the rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else (rate * 0.1 if rate else 0.0)
        self.tokens = self.burst
        self.clock = clock
        self.sleep = sleep
        self.last = clock()
        self.lock = threading.Lock()

    def take(self, amount: int) -> None:
        if self.rate is None:
            return
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate) - amount
            self.last = now
            debt = -self.tokens
        if debt > 0:
            self.sleep(debt / self.rate)


UNLIMITED = TokenBucket(None)


def stream_object(store: ObjectStore, key: str, limiter: TokenBucket = UNLIMITED,
                  chunk: int = CHUNK) -> Iterator[bytes]:
    """The object's bytes, chunk by chunk; ObjectMissing when there is none, StorageUnavailable on faults."""
    try:
        response = store.client.get_object(store.bucket, key)
    except S3Error as exc:
        if exc.code in MISSING:
            raise ObjectMissing(key) from None
        raise StorageUnavailable(f"object store failed on {key}: {exc.code}") from exc
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise StorageUnavailable(f"object store failed on {key}: {type(exc).__name__}") from exc
    try:
        for part in response.stream(chunk):
            limiter.take(len(part))
            yield part
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise StorageUnavailable(f"object store failed while reading {key}: {type(exc).__name__}") from exc
    finally:
        response.close()
        response.release_conn()


@dataclass(frozen=True)
class Digest:
    sha256: str
    size: int


def hash_object(store: ObjectStore, key: str, limiter: TokenBucket = UNLIMITED) -> Digest:
    sha, size = hashlib.sha256(), 0
    for part in stream_object(store, key, limiter):
        sha.update(part)
        size += len(part)
    return Digest(sha.hexdigest(), size)


@dataclass(frozen=True)
class ObjectState:
    """What S3 says about an object without reading it: its size and the `sha256` tag set when stored."""

    size: int
    tagged_sha256: str | None
    etag: str | None


def stat_object(store: ObjectStore, key: str) -> ObjectState | None:
    """None when there is no object at `key`."""
    found = store.stat_with_tags(key)
    if found is None:
        return None
    stat, tags = found
    return ObjectState(size=int(stat.size or 0), tagged_sha256=tags.get("sha256"), etag=stat.etag)
