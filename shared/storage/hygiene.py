"""Cleaning up after killed uploads: their multipart parts stay behind, invisible and billed.

Two things clean them: a bucket lifecycle rule that aborts incomplete uploads after a day (where the
server supports it), and `abort_stale_uploads`, which the downloader calls on start. Both take a minio
client and a bucket and let minio's errors through; `ObjectStore` decides what a failure means.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.error import S3Error
from minio.lifecycleconfig import AbortIncompleteMultipartUpload, LifecycleConfig, Rule

# Logged under the storage module's name, so these lines keep the logger name they had before the split.
log = logging.getLogger("shared.storage")

LIFECYCLE_RULE_ID = "dongbo-abort-incomplete-uploads"
NO_LIFECYCLE = frozenset({"NoSuchLifecycleConfiguration"})


def add_abort_rule(client: Minio, bucket: str) -> None:
    """Adds our lifecycle rule beside any the operator has, once."""
    try:
        current = client.get_bucket_lifecycle(bucket)
    except S3Error as exc:
        if exc.code not in NO_LIFECYCLE:
            raise
        current = None
    rules = list(current.rules) if current else []
    if any(rule.rule_id == LIFECYCLE_RULE_ID for rule in rules):
        return
    rules.append(Rule(
        ENABLED,
        rule_filter=Filter(prefix=""),
        rule_id=LIFECYCLE_RULE_ID,
        abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(days_after_initiation=1),
    ))
    client.set_bucket_lifecycle(bucket, LifecycleConfig(rules))
    log.info("bucket %s now aborts incomplete multipart uploads after 1 day", bucket)


def abort_stale_uploads(client: Minio, bucket: str, older_than: timedelta, prefix: str = "") -> int:
    """Aborts multipart uploads started more than `older_than` ago; returns how many."""
    cutoff = datetime.now(UTC) - older_than
    aborted = 0
    key_marker: str | None = None
    upload_marker: str | None = None
    while True:
        result = client._list_multipart_uploads(
            bucket, prefix=prefix or None, key_marker=key_marker, upload_id_marker=upload_marker,
        )
        for upload in result.uploads:
            started = upload.initiated_time
            if started is None:
                continue  # age unknown: it may be another worker's upload in flight
            if started.tzinfo is None:
                started = started.replace(tzinfo=UTC)
            if started <= cutoff and upload.upload_id is not None:
                client._abort_multipart_upload(bucket, upload.object_name, upload.upload_id)
                aborted += 1
                log.info("aborted stale multipart upload of %s started %s", upload.object_name, started)
        if not result.is_truncated or not result.uploads:
            break
        # minio 7.2 drops NextUploadIdMarker, so page on from the last upload listed.
        key_marker, upload_marker = result.uploads[-1].object_name, result.uploads[-1].upload_id
    return aborted
