"""A streaming standby of a test's own PostgreSQL server (harness/services.py `start_postgres_server`), so that
a test can list both in `DONGBO_DATABASE_URL`, stop the primary and promote the standby, as an operator would
after losing the primary. Both servers listen on free ports of 127.0.0.1; the machine's own server is never
touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

from harness.services import PostgresServer, free_port, wait_for


def start_standby(primary: PostgresServer) -> PostgresServer:
    """A hot standby of `primary`, made with `pg_basebackup -R` (which writes its primary_conninfo) and started.

    `remove()` stops it and deletes its files, as for the primary.
    """
    base_dir = Path(tempfile.mkdtemp(prefix="dongbo-pg-standby-"))
    if primary.run_as:
        account = pwd.getpwnam(primary.run_as)
        os.chown(base_dir, account.pw_uid, account.pw_gid)
    standby = PostgresServer(primary.bin_dir, base_dir, free_port(), primary.run_as)
    try:
        # initdb's default pg_hba.conf lets local replication connections in (trust), and wal_level=replica
        # with ten WAL senders is the default: the primary needs no change.
        standby._run("pg_basebackup", "-D", str(standby.data_dir), "-R", "-X", "stream", "--no-sync",
                     "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres")
        standby.start()
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
    return standby


def promote(standby: PostgresServer) -> None:
    """Makes the standby a primary (`pg_ctl promote`, waiting until it accepts writes)."""
    standby._run("pg_ctl", "promote", "-w", "-t", "60", "-D", str(standby.data_dir))


def wait_replayed(standby: PostgresServer, database: str, timeout: float = 30) -> None:
    """Waits until `database`, made on the primary, exists on the standby too."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(standby.admin_url, poolclass=sqlalchemy.pool.NullPool)

    def there() -> bool:
        with engine.connect() as connection:
            query = sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name")
            return connection.execute(query, {"name": database}).first() is not None

    try:
        wait_for(there, timeout=timeout, interval=0.2, what=f"database {database} on the standby")
    finally:
        engine.dispose()
