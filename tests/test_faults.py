"""Single faults, each injected for real: a poison message, a deleted dead-letter queue, a download that
outlasts heartbeats or loses its connection mid-transfer, SIGTERM mid-download, and bad settings."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pika
import pytest

from harness.pipeline import Pipeline, database_rows, queue_depths, sim_dossiers
from harness.queues import messages
from harness.services import ROOT, wait_for
from harness.tcpproxy import TcpProxy
from shared.broker.connection import connect
from shared.broker.consumer import Consumer, one_at_a_time
from shared.broker.outcome import REASON_HEADER
from shared.broker.publisher import Publisher, properties
from shared.broker.topology import DOWNLOAD, INDEX, Topology
from shared.errors import FileNotFound
from shared.messages import DossierFetched
from shared.onestop.models import Dossier

DELAYS = (0.5, 1.0, 2.0)


def fetched_message(sim_dossier: dict) -> DossierFetched:
    """The message the fetcher would publish for a dossier of the simulator."""
    return DossierFetched.of(Dossier.model_validate({**sim_dossier, "file_dinh_kem": sim_dossier["files"]}))


def publish(rabbit_url: str, topology: Topology, stage: str, *messages, raw: bytes | None = None) -> None:
    connection = connect(rabbit_url, "test")
    channel = connection.channel()
    topology.declare(channel)
    publisher = Publisher(channel, topology)
    if raw is not None:
        publisher.publish_raw(topology.queue(stage), raw, properties(None))
    for message in messages:
        publisher.publish(topology.queue(stage), message)
    connection.close()



def pipeline_for(sim, rabbit_url, pg_url, s3_server, bucket, queue_prefix, **env) -> Pipeline:
    units = sorted({d["madonvi"] for d in sim_dossiers(sim)})
    pipeline = Pipeline.configure(sim=sim, units=units, rabbit_url=rabbit_url, pg_url=pg_url, s3=s3_server,
                                  bucket=bucket, queue_prefix=queue_prefix, **env)
    pipeline.dongbo("db", "upgrade")
    return pipeline


def test_a_poison_message_is_dead_lettered_and_good_ones_pass(
    simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    sim = simulator_factory(
        "--seed", "3", "--units", "1", "--dossiers", "8", "--files-per-dossier", "1", "--file-size", "1000"
    )
    good = [d for d in sim_dossiers(sim) if d["has_result"]]
    topology = Topology(queue_prefix, DELAYS)
    publish(rabbit_url, topology, DOWNLOAD, raw=b"\xff not json at all")
    publish(rabbit_url, topology, DOWNLOAD, *[fetched_message(d) for d in good])
    pipeline = pipeline_for(sim, rabbit_url, pg_url, s3_server, bucket, queue_prefix)
    pipeline.start("downloader")
    pipeline.start("indexer")
    pipeline.start("acker")
    try:
        wait_for(
            lambda: all(d["synced"] for d in sim_dossiers(sim) if d["has_result"]),
            timeout=60,
            what="good dossiers synced",
        )
        parked = messages(rabbit_url, topology.dead_letter_queue(DOWNLOAD), remove=True)
        assert len(parked) == 1
        headers, body = parked[0]
        assert body == b"\xff not json at all"
        assert headers[REASON_HEADER] == "poison-message"
        assert headers["x-dongbo-service"] == "downloader" and headers["x-dongbo-attempts"] == 1
    finally:
        pipeline.stop_all()


def test_a_deleted_dead_letter_queue_is_declared_again(rabbit_url, queue_prefix):
    topology = Topology(queue_prefix, DELAYS)
    publish(rabbit_url, topology, DOWNLOAD, fetched_message({"mahoso": "X-1", "madonvi": "U", "files": []}))
    connection = pika.BlockingConnection(pika.URLParameters(rabbit_url))
    connection.channel().queue_delete(topology.dead_letter_queue(DOWNLOAD))
    connection.close()

    def handle(delivery):
        raise FileNotFound("gone")

    consumer = Consumer(
        service="test", amqp_url=rabbit_url, topology=topology, stage=DOWNLOAD, handle=one_at_a_time(handle)
    )
    # Declaring at start would bring the queue back; delete it again once the consumer is running.
    thread = threading.Thread(target=consumer.run)
    thread.start()
    try:
        wait_for(lambda: consumer.connected, what="consumer connected")
        connection = pika.BlockingConnection(pika.URLParameters(rabbit_url))
        connection.channel().queue_delete(topology.dead_letter_queue(DOWNLOAD))
        connection.close()
        publish_without_declare(rabbit_url, topology.queue(DOWNLOAD))
        wait_for(
            lambda: (
                queue_depths(rabbit_url, [topology.dead_letter_queue(DOWNLOAD)])[topology.dead_letter_queue(DOWNLOAD)]
                >= 1
            ),
            timeout=20,
            what="the message in a re-declared dead-letter queue",
        )
    finally:
        consumer.stop()
        thread.join(30)


def publish_without_declare(rabbit_url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(rabbit_url))
    channel = connection.channel()
    channel.confirm_delivery()
    message = fetched_message({"mahoso": "X-2", "madonvi": "U", "files": []})
    channel.basic_publish("", queue, message.to_bytes(), properties(message), mandatory=True)
    connection.close()


@pytest.mark.slow
@pytest.mark.parametrize("disconnect", [False, True], ids=["outlasts-heartbeats", "connection-closed-mid-download"])
def test_a_long_download_leaves_one_object_and_one_row(
    disconnect, simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    """A transfer longer than two heartbeat intervals keeps its connection; one whose connection is cut
    mid-transfer is handed out again, and still leaves one object and one row.

    The cut is what the broker does when a delivery outlasts `consumer_timeout`: it closes the channel
    and hands the message to another consumer while the first transfer goes on. (RabbitMQ 3.10 does not
    enforce consumer_timeout on quorum-queue consumers — no close within 150 s at a 5 s timeout on these
    machines — so the test cuts the connection on the wire instead.)
    """
    # 3 MB at 400 kB/s: about 8 s, four heartbeat intervals of 2 s.
    sim = simulator_factory(
        "--seed",
        "5",
        "--units",
        "1",
        "--dossiers",
        "1",
        "--files-per-dossier",
        "1",
        "--file-size",
        "3000000",
        "--file-bandwidth",
        "400000",
    )
    dossier = next(d for d in sim_dossiers(sim) if d["has_result"])
    topology = Topology(queue_prefix, DELAYS)
    publish(rabbit_url, topology, DOWNLOAD, fetched_message(dossier))
    proxy = TcpProxy.for_amqp(rabbit_url)
    pipeline = pipeline_for(sim, rabbit_url, pg_url, s3_server, bucket, queue_prefix, DONGBO_HEARTBEAT="2")
    downloader = pipeline.start("downloader", DONGBO_AMQP_URL=proxy.url(rabbit_url))
    pipeline.start("indexer")
    try:
        wait_for(lambda: sim_dossiers(sim)[0]["files"][0]["fetch_count"] >= 1, timeout=30, what="the download to start")
        if disconnect:
            time.sleep(2)
            assert proxy.cut() == 1  # the downloader's connection, mid-transfer
        wait_for(lambda: len(database_rows(pg_url)[0]) == 1, timeout=60, what="the dossier indexed")
        wait_for(
            lambda: not any(queue_depths(rabbit_url, [topology.queue(DOWNLOAD), topology.queue(INDEX)]).values()),
            timeout=30,
            what="queues drained",
        )
        ho_so, tai_lieu = database_rows(pg_url)
        assert len(ho_so) == 1 and len(tai_lieu) == 1
        objects = list(s3_server.client().list_objects(bucket, recursive=True))
        assert [o.object_name for o in objects] == [tai_lieu[0]["object_key"]]
        assert tai_lieu[0]["sha256"] == dossier["files"][0]["sha256"]
        if not disconnect:
            assert "connection lost" not in downloader.log()
            assert sim_dossiers(sim)[0]["files"][0]["fetch_count"] == 1
    finally:
        pipeline.stop_all()
        proxy.close()


def test_sigterm_finishes_the_download_in_flight(
    simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    sim = simulator_factory(
        "--seed",
        "6",
        "--units",
        "1",
        "--dossiers",
        "1",
        "--files-per-dossier",
        "1",
        "--file-size",
        "1500000",
        "--file-bandwidth",
        "500000",
    )
    dossier = next(d for d in sim_dossiers(sim) if d["has_result"])
    topology = Topology(queue_prefix, DELAYS)
    publish(rabbit_url, topology, DOWNLOAD, fetched_message(dossier))
    pipeline = pipeline_for(sim, rabbit_url, pg_url, s3_server, bucket, queue_prefix)
    downloader = pipeline.start("downloader")
    try:
        wait_for(lambda: sim_dossiers(sim)[0]["files"][0]["fetch_count"] >= 1, timeout=30, what="the download to start")
        assert downloader.terminate(timeout=30) == 0
        depths = queue_depths(rabbit_url, [topology.queue(DOWNLOAD), topology.queue(INDEX)])
        assert depths == {topology.queue(DOWNLOAD): 0, topology.queue(INDEX): 1}, (
            "the download was not finished and passed on"
        )
    finally:
        pipeline.stop_all()


def test_sigterm_stops_a_long_poll_between_chunks(
    simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    """A first poll of a large backlog reads for minutes; a stop must not wait for the end of the answer.
    A one-shot poll that was cut short says so in its exit status."""
    sim = simulator_factory(
        "--seed", "7", "--units", "1", "--dossiers", "30000", "--files-per-dossier", "1", "--file-size", "1024"
    )
    pipeline = pipeline_for(sim, rabbit_url, pg_url, s3_server, bucket, queue_prefix)
    queue = Topology(queue_prefix, DELAYS).queue(DOWNLOAD)
    fetcher = pipeline.start("fetcher", "--once")
    try:
        wait_for(
            lambda: queue_depths(rabbit_url, [queue])[queue] >= 1000, timeout=120, what="the first chunks handed on"
        )
        asked = time.monotonic()
        assert fetcher.terminate(timeout=30) == 1
        assert time.monotonic() - asked < 10
        handed_on = queue_depths(rabbit_url, [queue])[queue]
        assert handed_on < 25000 and "poll stopped after" in fetcher.log(), fetcher.log()[-2000:]
    finally:
        pipeline.stop_all()


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"DONGBO_INDEX_BATCH_SIZE": "many"}, "DONGBO_INDEX_BATCH_SIZE"),
        ({"DONGBO_ONESTOP_URL": "ftp://example"}, "DONGBO_ONESTOP_URL"),
        ({"DONGBO_ONESTOP_URL": ""}, "DONGBO_ONESTOP_URL"),
    ],
)
def test_a_bad_setting_stops_a_service_with_one_line_naming_it(env, setting, tmp_path):
    environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), **env}
    result = subprocess.run(
        [sys.executable, "-m", "services.acker"], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and setting in lines[0], result.stderr


@pytest.mark.slow
def test_a_replay_after_the_cause_is_fixed_brings_everything_in(
    simulator_factory, rabbit_url, pg_url, s3_server, bucket, queue_prefix
):
    from harness.pipeline import expected_dossiers, wait_until_synced
    from tests.test_pipeline_e2e import check_archive

    sim = simulator_factory(
        "--seed", "9", "--units", "1", "--dossiers", "30", "--files-per-dossier", "1", "--file-size", "2000-60000"
    )
    expected = expected_dossiers(sim)
    too_big = {d["mahoso"] for d in expected if d["files"][0]["size"] > 30000}
    assert too_big and len(too_big) < len(expected)
    pipeline = pipeline_for(sim, rabbit_url, pg_url, s3_server, bucket, queue_prefix, DONGBO_MAX_FILE_BYTES="30000")
    pipeline.start_all(downloaders=1)
    try:
        wait_until_synced(sim, pipeline, len(expected) - len(too_big), timeout=90)
        topology = Topology(queue_prefix, DELAYS)
        dlq = topology.dead_letter_queue(DOWNLOAD)
        wait_for(lambda: queue_depths(rabbit_url, [dlq])[dlq] == len(too_big), timeout=30, what="the big files parked")
        listing = json.loads(pipeline.dongbo("dlq", "list", "--json").stdout)
        assert listing["reasons"] == {"file-too-large": len(too_big)}

        # The cause: the limit. Raise it, restart the downloaders, replay.
        for process in pipeline.processes:
            if process.name == "downloader":
                process.terminate()
        pipeline.start("downloader", DONGBO_MAX_FILE_BYTES="10000000")
        pipeline.dongbo("dlq", "replay", "--reason", "file-too-large")
        wait_until_synced(sim, pipeline, len(expected), timeout=90)
        check_archive(sim, pg_url, s3_server, bucket)
        assert queue_depths(rabbit_url, [dlq])[dlq] == 0
        again = json.loads(pipeline.dongbo("dlq", "replay", "--json").stdout)
        assert again["total"] == 0
    finally:
        pipeline.stop_all()
