"""An archive filled by the real pipeline, shared by the tests of one module (trace, reconcile, audit,
export, inspector): the simulator, the four services as processes, real RabbitMQ, S3 and PostgreSQL.

Filling takes a few seconds, so each module fills one archive and its tests run against it in order.
Commands run in-process (`cli.main.main`) with the archive's settings in the environment.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy

from harness import services
from harness.pipeline import Pipeline, expected_dossiers, sim_dossiers, wait_until_synced
from harness.services import S3Server, Simulator


@dataclass
class Archive:
    sim: Simulator
    pipeline: Pipeline
    pg_url: str
    s3: S3Server
    bucket: str
    prefix: str
    unit: str
    start: date
    end: date

    @property
    def window(self) -> list[str]:
        return ["--unit", self.unit, "--from", f"{self.start:%d/%m/%Y}", "--to", f"{self.end:%d/%m/%Y}"]

    def dongbo(self, *args: str) -> tuple[int, str, str]:
        """Runs `dongbo ARGS` in this process with the archive's settings; (exit code, stdout, stderr)."""
        from cli.main import main

        saved = dict(os.environ)
        out, err = io.StringIO(), io.StringIO()
        try:
            for name in [n for n in os.environ if n.startswith("DONGBO_")]:
                del os.environ[name]
            os.environ.update(self.pipeline.env)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(args))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return code, out.getvalue(), err.getvalue()

    def dongbo_json(self, *args: str, expect: int = 0) -> dict:
        code, out, err = self.dongbo(*args, "--json")
        assert code == expect, f"exit {code}, expected {expect}:\n{out}\n{err}"
        return json.loads(out)

    def sql(self, statement: str, **params) -> list[dict]:
        engine = sqlalchemy.create_engine(self.pg_url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.begin() as connection:
                result = connection.execute(sqlalchemy.text(statement), params)
                return [dict(r) for r in result.mappings()] if result.returns_rows else []
        finally:
            engine.dispose()

    def object_bytes(self, key: str) -> bytes:
        response = self.s3.client().get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()


@contextlib.contextmanager
def filled_archive(s3_server: S3Server, rabbit_url: str, *, dossiers: int = 12, file_size: str = "3000-30000",
                   prepare: Callable[[Simulator, str], None] | None = None,
                   keep_running: bool = False) -> Iterator[Archive]:
    """A one-unit archive of `dossiers` dossiers, filled by the pipeline and by a backfill of the whole
    window (the date-range call also lists dossiers the incremental call leaves out)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    s3_server.client().make_bucket(bucket)
    sim = services.start_simulator("--seed", "11", "--units", "1", "--dossiers", str(dossiers),
                                   "--files-per-dossier", "2", "--file-size", file_size)
    pipeline = None
    try:
        listed = sim_dossiers(sim)
        unit = listed[0]["madonvi"]
        days = sorted(datetime.strptime(d["ngaynhan"], "%d/%m/%Y").date() for d in listed)
        if prepare:
            prepare(sim, unit)
        with services.fresh_database() as pg_url:
            pipeline = Pipeline.configure(sim=sim, units=[unit], rabbit_url=rabbit_url, pg_url=pg_url, s3=s3_server,
                                          bucket=bucket, queue_prefix=prefix)
            archive = Archive(sim, pipeline, pg_url, s3_server, bucket, prefix, unit, days[0], days[-1])
            pipeline.dongbo("db", "upgrade")
            # No inspector: test_inspector starts its own after `dongbo inspect --pending`.
            pipeline.start_all(downloaders=1, inspectors=0)
            pipeline.dongbo("backfill", *archive.window, "--window-days", "3660")
            wait_until_synced(sim, pipeline, len(expected_dossiers(sim)), timeout=120)
            services.wait_for(lambda: _all_indexed(archive, len(listed)), timeout=60,
                              what="every dossier of the window indexed")
            if not keep_running:
                pipeline.stop_all()
            try:
                yield archive
            finally:
                pipeline.stop_all()
    finally:
        sim.stop()
        services.delete_topologies(rabbit_url, prefix)


def _all_indexed(archive: Archive, count: int) -> bool:
    rows = archive.sql("SELECT count(*) AS n FROM sync_state WHERE status = 'synced'")
    return rows[0]["n"] >= count
