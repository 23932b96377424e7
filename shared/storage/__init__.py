"""The archive's object store: the S3 client (objects), object keys (keys) and multipart hygiene."""

from shared.storage.objects import LIFECYCLE_RULE_ID, ObjectStore, StoredObject

__all__ = ["LIFECYCLE_RULE_ID", "ObjectStore", "StoredObject"]
