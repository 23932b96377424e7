"""The inspect queue's message and who publishes it: one message per committed dossier, listing its files.

The indexer adds `inspection_messages(dossier)` to what its `Done` publishes, so the inspection is
requested in the same confirmed step that passes the dossier to the acker, yet marking synced never waits
for it: the inspector consumes its own queue. `publish_inspections` does the same for rows already in the
database (`dongbo inspect --pending`, for archives filled before the inspector existed).

One message a dossier, not one a file: in a first sync the inspections were half of everything the indexer
published and the broker carried. A body of the older one-file shape (`object_key`, `sha256`, `size` at the
top), still queued from before, is read as a list of one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.broker.topology import INSPECT
from shared.errors import PermanentError
from shared.messages import DossierStored, Message

# Files named by one message; a dossier with more (DONGBO_MAX_FILES_PER_DOSSIER can be raised) gets several.
FILES_PER_MESSAGE = 500


class FileRef(BaseModel):
    """A stored object whose PDF facts are wanted, with the bytes it is expected to hold."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    object_key: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    matailieu: str = ""


class FilesToInspect(Message):
    """indexer (or `dongbo inspect --pending`) → inspector: the stored files of one dossier."""

    kind: ClassVar[str] = "files.to-inspect"

    files: list[FileRef] = Field(min_length=1, max_length=FILES_PER_MESSAGE)

    @model_validator(mode="before")
    @classmethod
    def _one_file_shape(cls, data):
        """A message queued before this shape named one file at the top level."""
        if isinstance(data, dict) and "files" not in data and "object_key" in data:
            one = {name: data[name] for name in ("object_key", "sha256", "size", "matailieu") if name in data}
            return {**data, "files": [one]}
        return data


class StoredObjectMissing(PermanentError):
    """The object of a `tai_lieu` row is not in the bucket: the audit and reconcile report it."""

    reason = "object-missing"


def inspection_messages(dossier: DossierStored) -> list[tuple[str, Message]]:
    """(stage, message) pairs for a `Done`: the inspection of a committed dossier's files (none without files)."""
    unique = {f.object_key: f for f in dossier.files}.values()
    refs = [FileRef(object_key=f.object_key, sha256=f.sha256, size=f.size, matailieu=f.matailieu) for f in unique]
    return [(INSPECT, message) for message in _messages(dossier.mahoso, dossier.madonvi, refs)]


def publish_inspections(publisher, topology, rows: Iterable[dict]) -> int:
    """Sends the rows (`mahoso`, `madonvi`, `object_key`, `sha256`, `size`, `matailieu`), one message per
    dossier, and waits for the broker's confirms; returns how many files were queued."""
    by_dossier: dict[tuple[str, str], list[FileRef]] = {}
    for row in rows:
        by_dossier.setdefault((row["mahoso"], row["madonvi"]), []).append(
            FileRef(object_key=row["object_key"], sha256=row["sha256"], size=row["size"],
                    matailieu=row.get("matailieu") or ""))
    queue = topology.queue(INSPECT)
    sent = files = 0
    for (mahoso, madonvi), refs in by_dossier.items():
        for message in _messages(mahoso, madonvi, refs):
            publisher.send(queue, message)
            sent += 1
            files += len(message.files)
            if sent % 500 == 0:
                publisher.confirm_all()
    publisher.confirm_all()
    return files


def _messages(mahoso: str, madonvi: str, refs: list[FileRef]) -> list[FilesToInspect]:
    return [FilesToInspect(mahoso=mahoso, madonvi=madonvi, files=refs[start:start + FILES_PER_MESSAGE])
            for start in range(0, len(refs), FILES_PER_MESSAGE)]
