"""`dongbo inspect --pending`: asks the inspector for every stored file that has no PDF facts yet (or facts
about other bytes), so that an archive filled before the inspector existed is covered too."""

from __future__ import annotations

import argparse

from cli.common import operator_command
from shared.archive import GOOD


def add_parser(commands) -> None:
    parser = commands.add_parser("inspect", help="queue stored files for the inspector (page counts, PDF facts)")
    parser.add_argument("--pending", action="store_true", required=True,
                        help="every file without facts about its current bytes")
    parser.add_argument("--unit", metavar="MADONVI", help="only this unit's files")
    parser.set_defaults(handler=operator_command("inspect", run_inspect))


def pending_rows(engine, madonvi: str | None) -> list[dict]:
    from sqlalchemy import or_, select

    from shared.archive.tables import HO_SO, PDF_FACTS, TAI_LIEU

    t, h, f = TAI_LIEU, HO_SO, PDF_FACTS
    query = (select(t.c.mahoso, h.c.madonvi, t.c.object_key, t.c.sha256, t.c.size, t.c.matailieu)
             .join(h, h.c.id == t.c.ho_so_id).outerjoin(f, f.c.object_key == t.c.object_key)
             .where(or_(f.c.object_key.is_(None), f.c.sha256 != t.c.sha256)).order_by(t.c.id))
    if madonvi:
        query = query.where(h.c.madonvi == madonvi)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def run_inspect(settings, args: argparse.Namespace) -> int:
    from cli.checking import broker, read_database
    from shared.archive.inspection import publish_inspections

    rows = read_database(settings, lambda engine: pending_rows(engine, args.unit))
    with broker(settings, "inspect") as session:
        sent = publish_inspections(session.publisher, session.publisher.topology, rows)
    print(f"queued {sent} files for inspection")
    return GOOD
