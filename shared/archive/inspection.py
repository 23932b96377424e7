"""The inspect queue's message and who publishes it: one message per stored file, after its row is committed.

The indexer adds `inspection_messages(dossier)` to what its `Done` publishes, so the inspection is
requested in the same confirmed step that passes the dossier to the acker, yet marking synced never waits
for it: the inspector consumes its own queue. `publish_inspections` does the same for rows already in the
database (`dongbo inspect --pending`, for archives filled before the inspector existed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from pydantic import Field

from shared.broker.topology import INSPECT
from shared.errors import PermanentError
from shared.messages import DossierStored, Message


class FileToInspect(Message):
    """indexer (or `dongbo inspect --pending`) → inspector: a stored file whose PDF facts are wanted."""

    kind: ClassVar[str] = "file.to-inspect"

    object_key: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    matailieu: str = ""


class StoredObjectMissing(PermanentError):
    """The object of a `tai_lieu` row is not in the bucket: the audit and reconcile report it."""

    reason = "object-missing"


def inspection_messages(dossier: DossierStored) -> list[tuple[str, Message]]:
    """(stage, message) pairs for a `Done`: one inspection per file of a committed dossier."""
    return [(INSPECT, FileToInspect(mahoso=dossier.mahoso, madonvi=dossier.madonvi, object_key=f.object_key,
                                    sha256=f.sha256, size=f.size, matailieu=f.matailieu))
            for f in {f.object_key: f for f in dossier.files}.values()]


def publish_inspections(publisher, topology, rows: Iterable[dict]) -> int:
    """Sends one inspection per row (`mahoso`, `madonvi`, `object_key`, `sha256`, `size`, `matailieu`) and
    waits for the broker's confirms; returns how many."""
    sent = 0
    for row in rows:
        message = FileToInspect(mahoso=row["mahoso"], madonvi=row["madonvi"], object_key=row["object_key"],
                                sha256=row["sha256"], size=row["size"], matailieu=row.get("matailieu", ""))
        publisher.send(topology.queue(INSPECT), message)
        sent += 1
        if sent % 500 == 0:
            publisher.confirm_all()
    publisher.confirm_all()
    return sent
