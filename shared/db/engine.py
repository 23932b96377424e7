"""Connecting to the digitization database and bringing its schema up to date.

`DONGBO_DATABASE_URL` may name a primary and its standbys. Written the way SQLAlchemy takes it,
`postgresql+psycopg://user:pw@/db?host=h1:5432&host=h2:5432&target_session_attrs=read-write`, or the way
libpq takes it, `postgresql://user:pw@h1:5432,h2:5432/db?target_session_attrs=read-write` (rewritten into
the first form here). psycopg tries the hosts in order and keeps the first that accepts writes; when the
primary goes and a standby is promoted, the pool's pre-ping drops the dead connections and the next ones
find the new primary.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine

from shared.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the driver dongbo installs); a libpq host list becomes `host=`
    parameters, the only multi-host form SQLAlchemy parses."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            url = "postgresql+psycopg://" + url[len(plain):]
            break
    return _host_list_as_parameters(url)


def _host_list_as_parameters(url: str) -> str:
    """`scheme://user@h1:p1,h2:p2/db?x=y` → `scheme://user@/db?host=h1:p1&host=h2:p2&x=y` (passwords are
    percent-encoded in a URL, so the authority ends at the first "/" after the scheme)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgresql"):
        return url
    authority, slash, tail = rest.partition("/")
    credentials, at, hosts = authority.rpartition("@")
    if "," not in hosts:
        return url
    path, question, query = tail.partition("?")
    listed = "&".join(f"host={host.strip()}" for host in hosts.split(",") if host.strip())
    return f"{scheme}://{credentials}{at}/{path}?{listed}{'&' + query if question and query else ''}"


def make_engine(url: str, connections: int = 5) -> Engine:
    """An engine whose pool keeps up to `connections` open for reuse (5 more may open for a moment).

    `connections` should cover the threads that use the database at once: a connection opened beyond the
    pool is closed when given back, and the acker's report threads paid a new connection for every call
    when they outnumbered the pool.
    """
    url = normalize_url(url)
    try:
        if url.startswith("sqlite"):
            engine = sqlalchemy.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        # prepare_threshold=None: no server-side prepared statements. psycopg prepares a statement after
        # its fifth run, and PostgreSQL may then keep a generic plan made before the table had
        # statistics (a sequential scan of sync_state, re-run for every chunk of a large first poll).
        return sqlalchemy.create_engine(url, pool_pre_ping=True, pool_size=connections, max_overflow=5,
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
