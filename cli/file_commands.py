"""`dongbo file replace | delete | history`; `dongbo corrections` (cli/main.py) is the worker that sends them.

A correction is asked here and delivered by the corrections worker. `replace` first stores the new bytes
in the archive, under a key of their own that nothing else ever writes (`corrections/.../{id}-{name}`), then
records the correction in `hieu_chinh`, then publishes its message on `<prefix>.correct` with a confirm:
once the command says "queued", nothing is lost if the one-stop system, the worker or the broker goes away.
The unit is the one the archive holds for the dossier.

Exit codes: 0 queued (or shown), 1 the broker or the store could not take it (nothing was sent; run the
command again), 2 a wrong argument or setting (the dossier is not in the archive, the file is too big).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import uuid
from pathlib import Path

from cli.common import one_line, operator_command


def add_parser(commands) -> None:
    parser = commands.add_parser("file", help="correct a dossier's file on the one-stop system; show its history")
    actions = parser.add_subparsers(dest="file_command", required=True, metavar="ACTION")
    replace = actions.add_parser("replace", help="replace the dossier's file of a document type")
    replace.add_argument("mahoso")
    replace.add_argument("matailieu")
    replace.add_argument("path", type=Path, help="the new file")
    replace.add_argument("--name", dest="ten_file", help="the file's name there (default: the name of PATH)")
    replace.add_argument("--by", dest="requested_by", default="", help="who asks for the correction")
    replace.set_defaults(handler=operator_command("file replace", run_request))
    delete = actions.add_parser("delete", help="delete the dossier's file(s) of a document type")
    delete.add_argument("mahoso")
    delete.add_argument("matailieu")
    delete.add_argument("--by", dest="requested_by", default="", help="who asks for the correction")
    delete.set_defaults(handler=operator_command("file delete", run_request))
    history = actions.add_parser("history", help="a dossier's versions, files and corrections")
    history.add_argument("mahoso")
    history.add_argument("--json", action="store_true", help="machine-readable output")
    history.set_defaults(handler=operator_command("file history", run_history))


def run_request(settings, args: argparse.Namespace) -> int:
    import sqlalchemy
    from sqlalchemy import select

    from services.corrections.records import record_request
    from shared.db.engine import make_engine
    from shared.db.models import HoSo
    from shared.messages import CorrectionRequested

    action = args.file_command
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        with engine.connect() as connection:
            madonvi = connection.execute(select(HoSo.__table__.c.madonvi)  # type: ignore[attr-defined]
                                         .where(HoSo.__table__.c.mahoso == args.mahoso)).scalar()  # type: ignore[attr-defined]
    except sqlalchemy.exc.OperationalError as exc:
        print(f"dongbo file {action}: the database is not answering: {one_line(exc)}", file=sys.stderr)
        return 1
    if madonvi is None:
        print(f"dongbo file {action}: dossier {args.mahoso} is not in the archive", file=sys.stderr)
        return 2
    correction_id = uuid.uuid4().hex
    fields: dict = {}
    if action == "replace":
        stored = _store_replacement(settings, args, madonvi, correction_id)
        if isinstance(stored, int):
            return stored
        fields = stored
    message = CorrectionRequested(correction_id=correction_id, action=action, mahoso=args.mahoso, madonvi=madonvi,
                                  matailieu=args.matailieu, requested_by=args.requested_by, **fields)
    try:
        with engine.begin() as connection:
            record_request(connection, message)
    except sqlalchemy.exc.OperationalError as exc:
        print(f"dongbo file {action}: the database is not answering: {one_line(exc)}", file=sys.stderr)
        return 1
    status = _publish(settings, message)
    if status == 0:
        print(f"correction {correction_id} queued: {action} {args.matailieu} of {args.mahoso} ({madonvi})")
    return status


def _store_replacement(settings, args: argparse.Namespace, madonvi: str, correction_id: str) -> dict | int:
    """Puts the new bytes in the archive under a key no one else writes; the message's fields, or an exit code."""
    from shared.errors import DongboError
    from shared.storage import ObjectStore
    from shared.storage.keys import slug

    try:
        data = args.path.read_bytes()
    except OSError as exc:
        print(f"dongbo file replace: cannot read {args.path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if len(data) > settings.max_correction_bytes:
        print(f"dongbo file replace: {args.path} is {len(data)} bytes; the one-stop system takes at most "
              f"{settings.max_correction_bytes} (DONGBO_MAX_CORRECTION_BYTES)", file=sys.stderr)
        return 2
    ten_file = args.ten_file or args.path.name
    stem, dot, extension = ten_file.rpartition(".")
    suffix = "." + slug(extension, 10).lower() if dot and stem and extension.isascii() and extension.isalnum() else ""
    key = (f"corrections/{slug(madonvi, 100)}/{slug(args.mahoso, 100)}/{slug(args.matailieu, 100)}/"
           f"{correction_id}-{slug(stem if suffix else ten_file, 60, fallback='file')}{suffix}")
    content_type = mimetypes.guess_type(ten_file)[0] or "application/octet-stream"
    try:
        store = ObjectStore.from_settings(settings)
        store.ensure_bucket()
        result = store.put_whole(key, data, content_type, {"mahoso": args.mahoso.encode("ascii", "replace").decode(),
                                                           "correction": correction_id})
        found = store.find_complete(key)
    except DongboError as exc:
        print(f"dongbo file replace: the object store did not take the file: {one_line(exc)}", file=sys.stderr)
        return 1
    if found is None or found.sha256 != result.sha256 or found.size != len(data):
        print(f"dongbo file replace: the object store does not hold {key} as written", file=sys.stderr)
        return 1
    return {"ten_file": ten_file, "object_key": key, "size": len(data), "sha256": result.sha256}


def _publish(settings, message) -> int:
    import pika

    from shared.broker.connection import CONNECTION_ERRORS, connect
    from shared.broker.publisher import Publisher
    from shared.broker.topology import CORRECT, Topology

    topology = Topology.from_settings(settings)
    try:
        connection = connect(settings.amqp_url.get_secret_value(), "file", settings.heartbeat)
    except CONNECTION_ERRORS as exc:
        print(f"dongbo file: cannot connect to RabbitMQ: {one_line(exc)}; correction {message.correction_id} "
              "is recorded but not queued: run the command again", file=sys.stderr)
        return 1
    try:
        channel = connection.channel()
        topology.declare_stage(channel, CORRECT)
        Publisher(channel, topology).publish(topology.queue(CORRECT), message)
    except (*CONNECTION_ERRORS, pika.exceptions.NackError, pika.exceptions.UnroutableError) as exc:
        print(f"dongbo file: the broker did not take correction {message.correction_id}: {one_line(exc)}; "
              "run the command again", file=sys.stderr)
        return 1
    finally:
        if connection.is_open:
            connection.close()
    return 0


def run_history(settings, args: argparse.Namespace) -> int:
    from cli.dossier_history import history, render
    from shared.db.engine import make_engine

    found = history(make_engine(settings.database_url.get_secret_value()), args.mahoso)
    if found is None:
        print(f"dongbo file history: dossier {args.mahoso} is not in the archive", file=sys.stderr)
        return 2
    print(json.dumps(found, ensure_ascii=False, indent=2, default=str) if args.json else render(found))
    return 0
