"""A three-node RabbitMQ cluster of the test's own loses the node that leads the work queues mid-run, and gets
it back: every dossier is still indexed once and marked synced, and nothing good is parked.

The services are given all three addresses in `DONGBO_AMQP_URL`; their connections are spread over the
nodes, so stopping one node cuts some of them and the quorum queues elect new leaders on the two others.
The cluster is started from the installed rabbitmq-server on free ports (harness/rabbit_nodes.py): the
machine's own broker is not touched.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from harness.pipeline import Pipeline, expected_dossiers, sim_dossiers, wait_until_synced
from harness.rabbit_nodes import RabbitCluster, rabbit_cluster
from harness.services import wait_for
from shared.broker.connection import connect
from shared.broker.topology import WORK_QUEUES, Topology
from tests.test_pipeline_e2e import check_archive

pytestmark = pytest.mark.slow

DELAYS = "0.5,1,2,4"


@pytest.fixture(scope="module")
def cluster():
    with rabbit_cluster(3) as started:
        yield started


def depths(cluster: RabbitCluster, names: list[str]) -> dict[str, int]:
    """Messages waiting in each queue, asked of whichever node answers."""
    connection = connect(cluster.url, "test")
    try:
        channel = connection.channel()
        return {name: channel.queue_declare(name, passive=True).method.message_count for name in names}
    finally:
        connection.close()


def dead_letter_count(cluster: RabbitCluster, topology: Topology) -> int:
    return sum(depths(cluster, [topology.dead_letter_queue(stage) for stage in WORK_QUEUES]).values())


def members(cluster: RabbitCluster, prefix: str) -> dict[str, int]:
    """How many nodes hold a replica of each of the prefix's queues."""
    node = next(n for n in cluster.nodes if n.running())
    listing = node.ctl("list_queues", "--quiet", "--no-table-headers", "name", "members").stdout
    found = {}
    for line in listing.splitlines():
        name, _, rest = line.partition("\t")
        if name.startswith(prefix + "."):
            found[name] = rest.count("@")
    return found


def synced_count(sim) -> int:
    return requests.get(sim.root + "/_sim/stats", timeout=10).json()["synced"]


def files_fetched(sim) -> int:
    return requests.get(sim.root + "/_sim/stats", timeout=10).json()["file_fetches"]


def test_the_leader_of_the_work_queues_stops_and_comes_back(cluster, simulator_factory, pg_url, s3_server, bucket):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    # 80 ms on every one-stop request keeps the run going for long enough to stop a node in its first third
    # and start it again while dossiers are still moving.
    sim = simulator_factory("--seed", "17", "--units", "2", "--dossiers", "320", "--files-per-dossier", "2",
                            "--file-size", "200-3000", "--latency-ms", "80")
    expected = expected_dossiers(sim)
    units = sorted({d["madonvi"] for d in sim_dossiers(sim)})
    assert len(expected) >= 250

    pipeline = Pipeline.configure(
        sim=sim, units=units, rabbit_url=cluster.url, pg_url=pg_url, s3=s3_server, bucket=bucket,
        queue_prefix=prefix, DONGBO_RETRY_DELAYS=DELAYS, DONGBO_HEARTBEAT="5", DONGBO_DOWNLOAD_CONCURRENCY="1",
        DONGBO_ACK_BATCH_SIZE="20",
    )
    pipeline.dongbo("db", "upgrade")
    topology = Topology(prefix, tuple(float(d) for d in DELAYS.split(",")))
    # The queues are declared (as every service declares them) and the leader looked up before the services
    # start: a leader stays put while its nodes are up, and the lookup (a CLI call) can take longer on a busy
    # machine than the whole run.
    connection = connect(cluster.url, "test")
    try:
        topology.declare(connection.channel())
    finally:
        connection.close()
    # Quorum queues as always: each with a replica on every node.
    wait_for(lambda: len(members(cluster, prefix)) == len(topology.names()), timeout=60, interval=0.5,
             what="every queue declared")
    assert set(members(cluster, prefix).values()) == {3}, members(cluster, prefix)
    leader = cluster.leader_of(f"{prefix}.download")
    started = time.monotonic()
    pipeline.start_all(downloaders=2)
    try:
        # Mid-run by the files moved, not by the marks: the acker marks in batches, and on a busy machine its
        # first marks can come when most files are already stored.
        wait_for(lambda: files_fetched(sim) >= 40, timeout=90, interval=0.2, what="the first files moved")
        fetched = files_fetched(sim)
        assert fetched < len(expected) * 2 * 0.6, f"too late to stop a node mid-run: {fetched} files already moved"
        at_stop = synced_count(sim)
        leader.stop()
        stopped_at = time.monotonic() - started

        # Two nodes of three carry on: new leaders, the cut connections move to the nodes that are left.
        wait_for(lambda: synced_count(sim) >= at_stop + 40, timeout=90, interval=0.2,
                 what="progress with one node down")
        leader.start()
        restarted_at = time.monotonic() - started
        at_restart = synced_count(sim)
        wait_until_synced(sim, pipeline, len(expected), timeout=150)
        wait_for(lambda: not any(depths(cluster, [n for n in topology.names() if ".dlq" not in n]).values()),
                 timeout=60, what="work and retry queues empty")
        finished_at = time.monotonic() - started

        check_archive(sim, pg_url, s3_server, bucket)  # each dossier once in ho_so, each file intact
        dossiers = {d["mahoso"]: d for d in sim_dossiers(sim)}
        assert all(dossiers[d["mahoso"]]["synced"] and dossiers[d["mahoso"]]["mark_count"] >= 1 for d in expected)
        stats = requests.get(sim.root + "/_sim/stats", timeout=10).json()
        assert stats["synced"] == stats["marked_dossiers"] == len(expected), stats
        # A mark whose acknowledgement was on a connection to the stopped node is delivered again and repeated
        # (at-least-once; marking is idempotent); the archive still holds each dossier once (checked above).
        twice = sorted(m for m, d in dossiers.items() if d["mark_count"] > 1)
        assert all(d["mark_count"] <= 2 for d in dossiers.values())
        assert dead_letter_count(cluster, topology) == 0, "a good dossier was parked"
        assert set(members(cluster, prefix).values()) == {3}, "a queue lost its replica on the restarted node"
        log = pipeline.logs_whole()
        moved = log.count("connected to RabbitMQ at")
        print(f"{len(expected)} dossiers; leader {leader.name} stopped at {stopped_at:.1f}s after {at_stop} "
              f"synced, started again at {restarted_at:.1f}s with {at_restart} synced; "
              f"all synced at {finished_at:.1f}s; "
              f"{moved} broker connections opened; marked more than once (at-least-once redelivery): {len(twice)}")
    finally:
        pipeline.stop_all()
