"""Connecting to the digitization database and bringing its schema up to date."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine

from shared.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the driver dongbo installs)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        if url.startswith("sqlite"):
            engine = sqlalchemy.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        # prepare_threshold=None: no server-side prepared statements. psycopg prepares a statement after
        # its fifth run, and PostgreSQL may then keep a generic plan made before the table had
        # statistics (a sequential scan of sync_state, re-run for every chunk of a large first poll).
        return sqlalchemy.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                                        connect_args={"connect_timeout": 10, "prepare_threshold": None})
    except (sqlalchemy.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"DONGBO_DATABASE_URL: {exc}") from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets several processes read while one writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Applies the migrations (what `dongbo db upgrade` runs)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


# The newest migration's revision. Services compare the database with this constant instead of loading
# alembic (about 10 MB and 0.2 s per process); a test keeps it equal to the migrations' head.
HEAD_REVISION = "0005"


def schema_problem(revision: str | None) -> str | None:
    """What is wrong with a database at `revision`, with the command that fixes it; None when it is current."""
    if revision == HEAD_REVISION:
        return None
    return f"the schema is at revision {revision or 'none'}, expected {HEAD_REVISION}; run: dongbo db upgrade"


def migrations_head() -> str:
    """The head as alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration found in {MIGRATIONS}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when it was never migrated)."""
    with engine.connect() as connection:
        if not sqlalchemy.inspect(connection).has_table("alembic_version"):
            return None
        return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def wait_for_schema(engine: Engine, what: str, attempts: int | None = None) -> None:
    """Waits (with capped back-off) until the database answers, then insists on the current schema.

    A database that is down is a transient fault: the service waits for it. A schema that is behind is
    a deployment mistake: the service stops and says which command fixes it.
    """
    import logging
    import time

    from shared.backoff import Backoff
    from shared.logs import one_line, redact_url

    log = logging.getLogger(__name__)
    backoff, tried = Backoff(first=0.5, cap=30.0), 0
    while True:
        try:
            revision = current_revision(engine)
            break
        except sqlalchemy.exc.OperationalError as exc:
            tried += 1
            if attempts is not None and tried >= attempts:
                raise
            delay = backoff.next()
            # One line per attempt: a refused login would otherwise fill the log with tracebacks.
            where = redact_url(engine.url.render_as_string(hide_password=True))
            log.warning("%s: the database at %s: %s; next try in %.1fs", what, where, one_line(exc), delay)
            log.debug("%s: the database connection failed", what, exc_info=True)
            time.sleep(delay)
    if problem := schema_problem(revision):
        raise ConfigError(f"DONGBO_DATABASE_URL: {problem}")
