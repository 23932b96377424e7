"""Chaos: a few hundred dossiers while every service is killed (kill -9) and restarted at random, the
broker connections are cut (reset) by force, the S3 server and the database restart, and the simulator
fails, hangs, truncates and expires tokens. At the end every good dossier is indexed once, every file
stored with the right SHA-256, every dossier marked synced, and the poison ones — and only those —
sit in the dead-letter queues with their reasons.

Every server this test breaks is its own: the database is a throwaway PostgreSQL cluster, the S3 server the
harness's SeaweedFS, and the broker is cut on the wire by a proxy; the machine's servers are never restarted."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
import requests

from harness.pipeline import Pipeline, expected_dossiers, queue_depths, sim_dossiers, wait_until_synced
from harness.queues import dead_letters
from harness.services import fresh_database, wait_for
from harness.tcpproxy import TcpProxy
from shared.broker.topology import Topology
from tests.test_pipeline_e2e import check_archive

pytestmark = pytest.mark.slow

DELAYS = "0.5,1,2,4,8,8"
FAULTS = {
    "error_rate": {"dongbodulieumotcua": 0.1, "capnhattrangthaidongbo": 0.1, "files": 0.05, "dangnhap": 0.05},
    "truncate_rate": 0.03,
    "hang_rate": 0.01,
    "hang_seconds": 4,
    "token_lifetime": 3,
    "mark_fail_after_record_rate": 0.1,
}
# What each poison dossier of the simulator must be dead-lettered as.
POISON_REASONS = {"bad-date": "malformed-dossier", "missing-file": "file-not-found", "forbidden-host": "forbidden-host"}



@pytest.fixture
def own_pg_url(own_postgres):
    """A database on the test's own PostgreSQL server: the chaos restarts that server mid-run."""
    with fresh_database(own_postgres.admin_url) as url:
        yield url


def test_nothing_lost_nothing_duplicated_under_chaos(
    simulator_factory, rabbit_url, own_postgres, own_pg_url, s3_server, bucket, queue_prefix
):
    pg_url = own_pg_url
    rng = random.Random(20201030)
    sim = simulator_factory(
        "--seed",
        "11",
        "--units",
        "3",
        "--dossiers",
        "200",
        "--files-per-dossier",
        "2",
        "--file-size",
        "200-40000",
        "--poison",
        "6",
    )
    expected = expected_dossiers(sim)
    poison = {d["mahoso"]: d["poison"] for d in sim_dossiers(sim) if d["poison"]}
    assert len(poison) == 6 and len(expected) >= 150
    units = sorted({d["madonvi"] for d in sim_dossiers(sim)})

    # The services reach RabbitMQ through a proxy that can cut every connection at once.
    proxy = TcpProxy.for_amqp(rabbit_url)
    pipeline = Pipeline.configure(
        sim=sim,
        units=units,
        rabbit_url=proxy.url(rabbit_url),
        pg_url=pg_url,
        s3=s3_server,
        bucket=bucket,
        queue_prefix=queue_prefix,
        DONGBO_RETRY_DELAYS=DELAYS,
        DONGBO_READ_TIMEOUT="2",
        DONGBO_CONNECT_TIMEOUT="2",
        DONGBO_HEARTBEAT="5",
        DONGBO_HTTP_RETRIES="2",
        DONGBO_ACK_BATCH_SIZE="20",
    )
    pipeline.dongbo("db", "upgrade")
    requests.post(sim.root + "/_sim/faults", json=FAULTS, timeout=10).raise_for_status()
    pipeline.start_all(downloaders=2)
    try:
        # Chaos for a while: every 1–2.5 s one process is killed (kill -9) and a new one started in its
        # place; on top, the broker connections are cut, then the S3 server and then the database restart.
        started = time.monotonic()
        outages = [
            (8, "broker", lambda: proxy.cut() > 0),
            (18, "s3", s3_server.start),
            (28, "database", own_postgres.restart),
        ]
        kills: Counter[str] = Counter()
        done = []
        first = ["fetcher", "downloader", "indexer", "acker"]  # each service at least once, then at random
        while time.monotonic() - started < 45:
            time.sleep(rng.uniform(1.0, 2.5))
            alive = [p for p in pipeline.processes if p.alive()]
            name = first.pop(0) if first else None
            victim = next(p for p in alive if p.name == name) if name else rng.choice(alive)
            victim.kill()
            kills[victim.name] += 1
            pipeline.start(victim.name)
            for at, name, inject in outages:
                if name not in done and time.monotonic() - started >= at and inject() is not False:
                    done.append(name)
        assert done == ["broker", "s3", "database"], f"outages injected: {done}"
        assert sum(kills.values()) >= 15 and set(kills) >= {"fetcher", "downloader", "indexer", "acker"}, kills

        # Calm: faults off, every surviving process carries on.
        requests.post(
            sim.root + "/_sim/faults",
            json={"error_rate": {}, "truncate_rate": 0, "hang_rate": 0, "mark_fail_after_record_rate": 0},
            timeout=10,
        )
        wait_until_synced(sim, pipeline, len(expected), timeout=240)
        topology = Topology(queue_prefix, tuple(float(d) for d in DELAYS.split(",")))
        work_and_retry = [n for n in topology.names() if not n.endswith(".dlq")]
        wait_for(
            lambda: not any(queue_depths(rabbit_url, work_and_retry).values()),
            timeout=60,
            what="work and retry queues empty",
        )

        check_archive(sim, pg_url, s3_server, bucket)
        synced = {d["mahoso"] for d in sim_dossiers(sim) if d["synced"]}
        assert {d["mahoso"] for d in expected} <= synced
        assert not set(poison) & synced, "a poison dossier was marked synced"

        parked = [(str(mahoso), reason) for mahoso, reason in dead_letters(rabbit_url, topology)]
        assert {m for m, _ in parked} == set(poison), f"dead letters {parked} != poison {poison}"
        for mahoso, reason in parked:
            assert reason == POISON_REASONS[poison[mahoso]], (mahoso, reason)
    finally:
        pipeline.stop_all()
        proxy.close()
        requests.post(sim.root + "/_sim/faults", json={"error_rate": {}}, timeout=10)
