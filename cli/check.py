"""`dongbo check`: tries every dependency once and says in one line each what is wrong, or that it is OK."""

from __future__ import annotations

import argparse
import io
import uuid
from collections.abc import Callable

from cli.common import one_line, operator_command, redact_url
from shared.errors import ConfigError
from shared.logs import redact

OK, FAIL, SKIP = "ok", "FAIL", "skip"


def add_parser(commands) -> None:
    parser = commands.add_parser("check", help="try every dependency and say what is wrong, one line each")
    parser.add_argument("--create-bucket", action="store_true", help="create the bucket if it is missing")
    parser.set_defaults(handler=operator_command("check", check_all))


def check_all(settings, args: argparse.Namespace) -> int:
    print(_line(OK, "settings", f"loaded ({len(settings.units)} units, queue prefix {settings.queue_prefix})"))
    results = [
        _run("one-stop", lambda: check_onestop(settings)),
        _run("rabbitmq", lambda: check_broker(settings)),
        _run("bucket", lambda: check_bucket(settings, args.create_bucket)),
    ]
    from shared.db.engine import make_engine

    try:
        engine = make_engine(settings.database_url.get_secret_value())
    except ConfigError as exc:  # a URL SQLAlchemy cannot read, or a driver that is not installed
        results += [_report(FAIL, "database", str(exc)), _report(SKIP, "migrations", "no database")]
    else:
        try:
            results.append(_run("database", lambda: check_database(settings, engine)))
            if results[-1] == OK:
                results.append(_run("migrations", lambda: check_migrations(engine)))
            else:
                results.append(_report(SKIP, "migrations", "the database cannot be reached"))
        finally:
            engine.dispose()
    return 0 if FAIL not in results else 1


class Skipped(Exception):
    """A check that does not apply with these settings."""


def _run(name: str, check: Callable[[], str]) -> str:
    try:
        return _report(OK, name, check())
    except Skipped as exc:
        return _report(SKIP, name, str(exc))
    except Exception as exc:  # every failure of a dependency is a line of the report, never a traceback
        return _report(FAIL, name, one_line(exc))


def _report(status: str, name: str, detail: str) -> str:
    print(_line(status, name, detail), flush=True)
    return status


def _line(status: str, name: str, detail: str) -> str:
    return redact(f"{status:<4}  {name}: {detail}")


def check_onestop(settings) -> str:
    from shared.onestop import OneStopClient

    if not settings.onestop_url:
        raise Skipped("DONGBO_ONESTOP_URL is not set")
    # One try, no back-off: a check should answer in seconds, not after the services' retry schedule.
    with OneStopClient.from_settings(settings.model_copy(update={"http_retries": 0})) as client:
        client.login()
    return f"logged in at {redact_url(settings.onestop_url)} as {settings.onestop_username}"


def check_broker(settings) -> str:
    from shared.broker.connection import connect
    from shared.broker.topology import Topology

    url = settings.amqp_url.get_secret_value()
    where = redact_url(url)
    try:
        connection = connect(url, "check", settings.heartbeat)
    except Exception as exc:
        raise RuntimeError(f"cannot connect to {where}: {one_line(exc)}") from None
    try:
        topology = Topology.from_settings(settings)
        try:
            topology.declare(connection.channel())
        except Exception as exc:  # usually a queue declared earlier with other arguments
            raise RuntimeError(f"connected to {where}, but declaring the queues failed: {one_line(exc)}") from None
        return f"connected to {where}; {len(topology.names())} queues declared"
    finally:
        if connection.is_open:
            connection.close()


def check_bucket(settings, create: bool) -> str:
    import urllib3

    from shared.storage import ObjectStore

    store = ObjectStore.from_settings(settings)
    client, bucket = store.client, settings.s3_bucket
    where = f"{'https' if settings.s3_secure else 'http'}://{settings.s3_endpoint}/{bucket}"
    created = ""
    try:
        exists = client.bucket_exists(bucket)
    except urllib3.exceptions.HTTPError as exc:
        raise RuntimeError(f"cannot reach {where}: {one_line(exc)}") from None
    if not exists:
        if not create:
            raise RuntimeError(f"{where} does not exist (the downloader creates it at start; "
                               "or run: dongbo check --create-bucket)")
        client.make_bucket(bucket)
        created = "created; "
    key = f".dongbo-check/{uuid.uuid4().hex}"
    probe = b"dongbo check probe\n"
    client.put_object(bucket, key, io.BytesIO(probe), len(probe), content_type="text/plain")
    client.remove_object(bucket, key)
    return f"{where}: {created}wrote and deleted a probe object"


def check_database(settings, engine) -> str:
    import sqlalchemy

    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT 1"))
    return f"connected to {redact_url(settings.database_url.get_secret_value())}"


def check_migrations(engine) -> str:
    from shared.db.engine import HEAD_REVISION, current_revision, schema_problem

    if problem := schema_problem(current_revision(engine)):
        raise RuntimeError(problem)
    return f"schema at revision {HEAD_REVISION} (the newest)"
