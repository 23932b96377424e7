"""`DONGBO_DATABASE_URL` naming a primary and its standby, with `target_session_attrs=read-write`: dongbo
writes to whichever is the primary, and after the primary is lost and the standby promoted, the same engine
(as every service holds one) reconnects to the new primary.

Both servers are the test's own (initdb and pg_basebackup on free ports); the machine's server is untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy

from harness.postgres_standby import promote, start_standby, wait_replayed
from harness.services import ROOT, start_postgres_server
from shared.db.engine import HEAD_REVISION, current_revision, make_engine, normalize_url, upgrade

pytestmark = pytest.mark.slow


def test_host_lists_become_parameters_sqlalchemy_parses():
    libpq = "postgresql://dongbo:p%40ss@db-a:5432,db-b:5433/dongbo?target_session_attrs=read-write"
    url = normalize_url(libpq)
    assert url == ("postgresql+psycopg://dongbo:p%40ss@/dongbo?host=db-a:5432&host=db-b:5433"
                   "&target_session_attrs=read-write")
    engine = sqlalchemy.create_engine(url)
    _, args = engine.dialect.create_connect_args(engine.url)
    assert (args["host"], args["port"], args["password"]) == ("db-a,db-b", "5432,5433", "p@ss")
    assert args["target_session_attrs"] == "read-write"
    # One host, and the form SQLAlchemy reads already, stay as they are.
    assert normalize_url("postgresql://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert normalize_url(url) == url


@pytest.fixture
def primary_and_standby():
    primary = start_postgres_server()
    standby = None
    try:
        standby = start_standby(primary)
        yield primary, standby
    finally:
        if standby is not None:
            standby.remove()
        primary.remove()


def where(engine) -> tuple[int, bool]:
    """(port, in recovery) of the server a pooled connection reaches."""
    with engine.connect() as connection:
        port, recovering = connection.execute(sqlalchemy.text("SELECT inet_server_port(), pg_is_in_recovery()")).one()
    return port, recovering


def test_dongbo_follows_the_primary_across_a_promotion(primary_and_standby):
    primary, standby = primary_and_standby
    name = f"dongbo_failover_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(primary.admin_url, isolation_level="AUTOCOMMIT",
                                     poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    wait_replayed(standby, name)

    # The standby first: a client that took the first host that answers would land on a read-only server.
    url = (f"postgresql://postgres@/{name}?host=127.0.0.1:{standby.port}&host=127.0.0.1:{primary.port}"
           "&target_session_attrs=read-write")
    upgrade(url)  # migrations go to the primary
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DONGBO_")}
    environ.update(DONGBO_DATABASE_URL=url, PYTHONPATH=str(ROOT))
    command = subprocess.run([sys.executable, "-m", "cli.main", "db", "current"], cwd=ROOT, env=environ,
                             capture_output=True, text=True, timeout=60)
    assert command.stdout.strip() == HEAD_REVISION, command.stderr

    engine = make_engine(url)
    assert where(engine) == (primary.port, False)
    assert current_revision(engine) == HEAD_REVISION
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE probe (n int)"))
        connection.execute(sqlalchemy.text("INSERT INTO probe VALUES (1)"))

    # The primary is lost; the operator promotes the standby. Nothing in dongbo's configuration changes.
    primary.stop("immediate")
    started = time.monotonic()
    promote(standby)
    assert where(engine) == (standby.port, False), "the pool should have dropped its dead connections"
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("INSERT INTO probe VALUES (2)"))
        assert connection.execute(sqlalchemy.text("SELECT array_agg(n ORDER BY n) FROM probe")).scalar() == [1, 2]
    assert current_revision(engine) == HEAD_REVISION
    print(f"writes on the promoted standby {time.monotonic() - started:.1f}s after the primary stopped")
    engine.dispose()
