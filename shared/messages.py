"""The messages between the services: JSON bodies validated by pydantic, each with a schema version.

Messages carry keys and references (object keys, `mahoso`), never file bytes. Every message names its
dossier (`mahoso`) and unit (`madonvi`) so that logs, dead letters and replays can always say which.

Every message about a dossier also names its version: `fetched_at`, when the fetcher saw that content (the
order of versions), and `source_hash`, a fingerprint of the content. The indexer never lets an older version
replace a newer one, and the acker marks only the version the archive holds. Both fields were added to
schema version 1 with defaults: a message already queued without them is read as "version unknown".
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import PoisonMessage
from shared.onestop.models import Attachment, Dossier

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def dossier_hash(dossier: Dossier) -> str:
    """The fingerprint of a dossier's content as the one-stop system sent it (after validation)."""
    return hashlib.sha256(dossier.model_dump_json().encode("utf-8")).hexdigest()


class Message(BaseModel):
    """Base of every message; `kind` tells a reader which model a body is."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    kind: ClassVar[str]

    schema_version: Literal[1] = 1
    mahoso: str = Field(min_length=1)
    madonvi: str = Field(min_length=1)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, body: bytes):
        """Parses a body or raises PoisonMessage, which sends it straight to the dead-letter queue."""
        try:
            return cls.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "body"
            raise PoisonMessage(f"not a valid {cls.__name__} message: {where}: {first['msg']}") from None


class DossierMessage(Message):
    """A message that carries the dossier's own fields on to the indexer."""

    tentochuccanhan: str = ""
    ngaynhan: date | None = None
    mathutuc: str = ""
    tenthutuc: str = ""


class DossierFetched(DossierMessage):
    """fetcher → downloader: a dossier the one-stop system returned, with the files to store."""

    kind: ClassVar[str] = "dossier.fetched"

    files: list[Attachment] = Field(default_factory=list)
    fetched_at: datetime = Field(default_factory=utcnow)
    source_hash: str = ""

    @classmethod
    def of(cls, dossier: Dossier) -> DossierFetched:
        # The dossier's own fields carry over by name (DossierMessage lists them).
        fields = dossier.model_dump(include=set(DossierMessage.model_fields))
        return cls(**fields, source_hash=dossier_hash(dossier), files=list(dossier.file_dinh_kem))


class StoredFile(BaseModel):
    """One attachment after it is in the bucket."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    matailieu: str
    tentailieu: str = ""
    ten_file: str = ""
    url_file: str
    object_key: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str = "application/octet-stream"
    content_type_mismatch: bool = False
    stored_at: datetime = Field(default_factory=utcnow)


class DossierStored(DossierMessage):
    """downloader → indexer: the dossier with every file stored (keys, sizes, hashes)."""

    kind: ClassVar[str] = "dossier.stored"

    files: list[StoredFile] = Field(default_factory=list)
    fetched_at: datetime | None = None
    source_hash: str = ""

    @classmethod
    def of(cls, dossier: DossierFetched, files: list[StoredFile]) -> DossierStored:
        """The fetched dossier once its files are stored: the same fields and the same version."""
        fields = dossier.model_dump(include=set(DossierMessage.model_fields) | {"fetched_at", "source_hash"})
        return cls(**fields, files=files)


class DossierIndexed(Message):
    """indexer → acker: the dossier's record is committed; it may be marked synced."""

    kind: ClassVar[str] = "dossier.indexed"

    indexed_at: datetime = Field(default_factory=utcnow)
    # The version that was indexed; the acker marks the dossier synced only while the archive holds it.
    fetched_at: datetime | None = None
    source_hash: str = ""


class CorrectionRequested(Message):
    """`dongbo file replace|delete` → corrections worker: change one document type's file on the one-stop system.

    A replacement's bytes are already in the archive under `object_key` (never in the message).
    """

    kind: ClassVar[str] = "correction.requested"

    correction_id: str = Field(min_length=1, max_length=64)
    action: Literal["replace", "delete"]
    matailieu: str = Field(min_length=1)
    ten_file: str = ""
    object_key: str | None = None
    size: int | None = None
    sha256: str | None = None
    requested_by: str = ""
    requested_at: datetime = Field(default_factory=utcnow)
