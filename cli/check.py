"""`dongbo check`: tries every dependency once and says in one line each what is wrong, or that it is OK.

Exit codes, as for every checking command: 0 all good (warnings allowed), 1 a dependency failed, 2 the
settings are not usable (a required setting missing, no units, a unit code that cannot be one), so that a
configuration mistake stops a deployment script instead of giving "0 dossiers" forever.
"""

from __future__ import annotations

import argparse
import io
import uuid
from collections.abc import Callable

from cli.common import one_line, operator_command, redact_url
from shared.errors import ConfigError
from shared.logs import redact

OK, FAIL, SKIP, WARN = "ok", "FAIL", "skip", "warn"
# What every service needs and has no sensible default for; the stores default to a local set-up.
REQUIRED = ("onestop_url", "onestop_username", "onestop_password", "units")


def add_parser(commands) -> None:
    parser = commands.add_parser("check", help="try every dependency and say what is wrong, one line each")
    parser.add_argument("--create-bucket", action="store_true", help="create the bucket if it is missing")
    parser.set_defaults(handler=operator_command("check", check_all))


def check_all(settings, args: argparse.Namespace) -> int:
    problems = settings_problems(settings)
    for problem in problems:
        _report(FAIL, "settings", problem)
    if not problems:
        _report(OK, "settings", f"loaded ({len(settings.units)} units, queue prefix {settings.queue_prefix})")
    onestop = _run("one-stop", lambda: check_onestop(settings))
    results = [onestop]
    if onestop == OK and not problems:
        results.append(check_units(settings))
    results += [
        _run("rabbitmq", lambda: check_broker(settings)),
        _run("bucket", lambda: check_bucket(settings, args.create_bucket)),
    ]
    results += check_database_and_migrations(settings)
    if problems:
        return 2
    return 0 if FAIL not in results else 1


def settings_problems(settings) -> list[str]:
    """Each required setting that is missing, and each unit code that cannot be one: one line each."""
    from shared.settings import PREFIX
    from shared.unit_codes import unit_list_problems

    problems = [f"{PREFIX}{name.upper()} is not set" for name in REQUIRED
                if name != "units" and getattr(settings, name) in (None, "")]
    problems += [f"{PREFIX}UNITS: {problem}" for problem in unit_list_problems(list(settings.units))]
    return problems


def check_units(settings) -> str:
    """Asks the one-stop system for each unit's first dossier; a unit that returns none gets a warning
    (a mistyped or foreign unit code looks exactly like a unit with nothing to sync)."""
    from shared.onestop import OneStopClient

    quiet: list[str] = []
    try:
        with OneStopClient.from_settings(settings.model_copy(update={"http_retries": 0})) as client:
            for madonvi in settings.units:
                dossiers = client.fetch_dossiers(madonvi)
                try:
                    if next(dossiers, None) is None:
                        quiet.append(madonvi)
                finally:
                    getattr(dossiers, "close", lambda: None)()  # closing the stream ends the download
    except Exception as exc:  # a failure here is the one-stop system's, already a line of its own
        return _report(FAIL, "units", f"asking for dossiers failed: {one_line(exc)}")
    for madonvi in quiet:
        _report(WARN, "units", f"{madonvi} returned no dossier: check the code, or all its dossiers may be "
                               "synced already")
    if len(quiet) < len(settings.units):
        _report(OK, "units", f"{len(settings.units) - len(quiet)} of {len(settings.units)} units returned dossiers")
    return WARN if quiet else OK


def check_database_and_migrations(settings) -> list[str]:
    from cli.status import database_problem
    from shared.db.engine import make_engine

    url = settings.database_url.get_secret_value()
    if problem := database_problem(settings):  # e.g. no SQLite file: connecting would create an empty one
        return [_report(FAIL, "database", problem), _report(SKIP, "migrations", "no database")]
    results = []
    try:
        engine = make_engine(url)
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
    return results


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
        raise Skipped("DONGBO_ONESTOP_URL is not set")  # already a FAIL line of the settings
    # One try, no back-off: a check should answer in seconds, not after the services' retry schedule.
    with OneStopClient.from_settings(settings.model_copy(update={"http_retries": 0})) as client:
        client.login()
    return f"logged in at {redact_url(settings.onestop_url)} as {settings.onestop_username}"


def check_broker(settings) -> str:
    from shared.broker.connection import connect, describe
    from shared.broker.topology import Topology

    url = settings.amqp_url.get_secret_value()
    where = describe(url)
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
