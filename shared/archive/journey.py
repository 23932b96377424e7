"""One dossier's journey through dongbo, from what the system holds: its sync state, its `ho_so` and
`tai_lieu` rows, the proofs kept about its files (audits, PDF facts), its versions and corrections
(shared/archive/versions.py, the same query `dongbo file history` and the web page use), and the dead
letter holding it now.

`load_journey` reads the database only; `dead_letters_of` peeks at the dead-letter queues (every message
is given back, none is consumed). `dongbo trace` prints the result; a web page can show the same dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from shared.archive.tables import FILE_AUDIT, HO_SO, PDF_FACTS, SYNC_STATE, TAI_LIEU
from shared.archive.versions import load_history


@dataclass
class Event:
    at: datetime | None
    stage: str
    detail: str


@dataclass
class Journey:
    mahoso: str
    found: bool = False
    madonvi: str = ""
    status: str = ""  # sync_state.status, or "unknown"
    attempts: int = 0
    publish_count: int = 0
    last_reason: str | None = None
    last_error: str | None = None
    dossier: dict[str, Any] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    # Oldest first; each with its files (current or superseded) and the corrections that led to it.
    versions: list[dict[str, Any]] = field(default_factory=list)
    corrections: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def load_journey(engine: Engine, mahoso: str) -> Journey:
    """What the database knows of one dossier, in the order it happened."""
    state_t, ho_so_t, tai_lieu_t = SYNC_STATE, HO_SO, TAI_LIEU
    audit_t, facts_t = FILE_AUDIT, PDF_FACTS
    journey = Journey(mahoso=mahoso)
    with engine.connect() as connection:
        state = connection.execute(select(state_t).where(state_t.c.mahoso == mahoso)).mappings().first()
        dossier = connection.execute(select(ho_so_t).where(ho_so_t.c.mahoso == mahoso)).mappings().first()
        files = connection.execute(
            select(tai_lieu_t).where(tai_lieu_t.c.mahoso == mahoso).order_by(tai_lieu_t.c.matailieu, tai_lieu_t.c.id)
        ).mappings().all()
        keys = [row["object_key"] for row in files]
        audits = {row["object_key"]: row for row in connection.execute(
            select(audit_t).where(audit_t.c.object_key.in_(keys))).mappings()} if keys else {}
        facts = {row["object_key"]: row for row in connection.execute(
            select(facts_t).where(facts_t.c.object_key.in_(keys))).mappings()} if keys else {}
        found = load_history(connection, mahoso)
    events = journey.events
    if state is not None:
        journey.found = True
        journey.madonvi = state["madonvi"]
        journey.status = state["status"]
        journey.attempts = state["attempts"]
        journey.publish_count = state["publish_count"]
        journey.last_reason, journey.last_error = state["last_reason"], state["last_error"]
        events.append(Event(state["first_seen_at"], "first seen", "returned by the one-stop system"))
        if state["published_at"]:
            events.append(Event(state["published_at"], "handed on",
                                f"to the download queue ({state['publish_count']} time(s) in all)"))
        if state["last_error_at"]:
            events.append(Event(state["last_error_at"], "failed",
                                f"{state['last_reason']}: {state['last_error']} (attempt {state['attempts']})"))
    if dossier is not None:
        journey.found = True
        journey.madonvi = journey.madonvi or dossier["madonvi"]
        journey.dossier = {name: dossier[name] for name in (
            "madonvi", "tentochuccanhan", "ngaynhan", "mathutuc", "tenthutuc", "file_count", "state",
            "fetched_at", "indexed_at", "synced_at")}
        if dossier["fetched_at"]:
            events.append(Event(dossier["fetched_at"], "fetched", "read from the one-stop system"))
    for row in files:
        audit, fact = audits.get(row["object_key"]), facts.get(row["object_key"])
        journey.files.append({
            "matailieu": row["matailieu"], "tentailieu": row["tentailieu"], "ten_file": row["ten_file"],
            "url_file": row["url_file"], "object_key": row["object_key"], "size": row["size"],
            "sha256": row["sha256"], "content_type": row["content_type"],
            "superseded_at": row["superseded_at"], "superseded_reason": row["superseded_reason"],
            "content_type_mismatch": row["content_type_mismatch"], "stored_at": row["stored_at"],
            "audit": None if audit is None else {"result": audit["result"], "at": audit["audited_at"],
                                                 "detail": audit["detail"]},
            "pdf": None if fact is None else {name: fact[name] for name in ("is_pdf", "pages", "signed", "pdfa",
                                                                            "problem")},
        })
        events.append(Event(row["stored_at"], "stored",
                            f"{row['matailieu']} → {row['object_key']} ({row['size']} bytes)"))
        if audit is not None:
            events.append(Event(audit["audited_at"], "audited", f"{row['object_key']}: {audit['result']}"))
    if dossier is not None:
        events.append(Event(dossier["indexed_at"], "indexed", f"ho_so and {len(files)} tai_lieu rows committed"))
        if dossier["synced_at"]:
            events.append(Event(dossier["synced_at"], "marked synced", "the one-stop system was told"))
    elif state is not None and state["synced_at"]:
        events.append(Event(state["synced_at"], "marked synced", "the one-stop system was told"))
    if found is not None:
        journey.versions, journey.corrections = found["versions"], found["corrections"]
        _version_events(journey)
    events.sort(key=_order)
    return journey


def _version_events(journey: Journey) -> None:
    for row in journey.files:
        if row["superseded_at"]:
            journey.events.append(Event(row["superseded_at"], "superseded",
                                        f"{row['object_key']}: {row['superseded_reason'] or 'no reason recorded'}"))
    for version in journey.versions:
        journey.events.append(Event(version["recorded_at"], "new version" if version["number"] > 1 else "version",
                                    f"#{version['number']} {version['version_hash'][:12]}, "
                                    f"{len(version['object_keys'])} file(s)"))
    for c in journey.corrections:
        journey.events.append(Event(c["requested_at"], "correction",
                                    f"{c['action']} {c['matailieu']} asked by {c['requested_by'] or '?'}"))
        if c["finished_at"]:
            journey.events.append(Event(c["finished_at"], f"correction {c['status']}", c["outcome"] or ""))


def dead_letters_of(channel, publisher, topology, mahoso: str) -> list[dict[str, Any]]:
    """Every dead letter of this dossier in every stage's dead-letter queue; each is given back."""
    from shared.broker.dead_letters import DeadLetter, Selection, scan
    from shared.broker.topology import WORK_QUEUES

    found: list[dict[str, Any]] = []

    def note(letter: DeadLetter) -> bool:
        found.append({**letter.as_dict(), "stage": letter.stage})
        return False  # not settled here: scan gives it back

    for stage in WORK_QUEUES:
        scan(channel, publisher, topology, stage, Selection(mahosos={mahoso}), note)
    return found


def add_dead_letters(journey: Journey, letters: list[dict[str, Any]]) -> None:
    journey.dead_letters = letters
    for letter in letters:
        journey.found = True
        at = _parse_time(letter.get("failed_at"))
        journey.events.append(Event(at, "dead-lettered", f"in {letter['dlq']}: {letter['reason']}: {letter['error']}"))
    journey.events.sort(key=_order)


def _order(event: Event) -> tuple[bool, float]:
    if event.at is None:
        return True, 0.0
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return False, at.timestamp()


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
