"""Message models, the retry/dead-letter decision, and batching (consumer batches, acker batches per unit)."""

from __future__ import annotations

import threading
from datetime import date

import pytest
import requests

from harness.pipeline import sim_dossiers
from harness.services import wait_for
from services.acker.handler import AckHandler
from shared.broker.connection import connect
from shared.broker.consumer import Consumer
from shared.broker.outcome import DeadLetter, Delivery, Done, Retry, decide
from shared.broker.publisher import Publisher
from shared.broker.topology import DOWNLOAD, Topology
from shared.db.engine import make_engine, upgrade
from shared.errors import FileNotFound, OneStopUnavailable, PoisonMessage
from shared.messages import DossierFetched, DossierIndexed, DossierStored
from shared.onestop import OneStopClient
from shared.onestop.models import Dossier

DOSSIER = Dossier.model_validate({
    "mahoso": "000.00.17.H55-200917-0013", "madonvi": "000.00.17.H55", "tentochuccanhan": "Nguyễn Văn A",
    "ngaynhan": "17/09/2020", "mathutuc": "1.005434.000.00.00.H55", "tenthutuc": "Thủ tục",
    "file_dinh_kem": [{"matailieu": "000.00.00.G12-KQ5586", "tentailieu": "Bản sao", "ten_file": "file_dinh_kem.pdf",
                       "url_file": "http://motcua.thainguyen.gov.vn/a/2020_10_19_031048885!~!file_dinh_kem.pdf"}],
})


def test_a_message_survives_the_trip_through_bytes():
    message = DossierFetched.of(DOSSIER)
    again = DossierFetched.from_bytes(message.to_bytes())
    assert again == message
    assert again.ngaynhan == date(2020, 9, 17) and again.files[0].ten_file == "file_dinh_kem.pdf"
    assert again.schema_version == 1 and b'"schema_version":1' in message.to_bytes()


@pytest.mark.parametrize("body, where", [
    (b"not json", "body"),
    (b'{"schema_version": 2, "mahoso": "M", "madonvi": "U", "files": []}', "schema_version"),
    (b'{"schema_version": 1, "madonvi": "U", "files": []}', "mahoso"),
    (b'{"schema_version": 1, "mahoso": "M", "madonvi": "U", "files": [{"object_key": "k"}]}', "files"),
])
def test_a_body_of_the_wrong_shape_is_a_poison_message_that_names_the_field(body, where):
    with pytest.raises(PoisonMessage) as caught:
        DossierStored.from_bytes(body)
    assert where in str(caught.value)


def test_the_decision_retries_with_a_count_then_dead_letters():
    first, last = Delivery(tag=1, body=b"", headers={}, attempt=0), Delivery(tag=2, body=b"", headers={}, attempt=5)
    assert isinstance(decide(first, Done(), 6), Done)
    assert decide(first, OneStopUnavailable("503"), 6) == Retry(1, "onestop-unavailable", "503")
    assert decide(first, ValueError("boom"), 6) == Retry(1, "unexpected", "boom")
    assert decide(first, FileNotFound("404"), 6) == DeadLetter("file-not-found", "404")
    gave_up = decide(last, OneStopUnavailable("503"), 6)
    assert isinstance(gave_up, DeadLetter) and gave_up.reason == "onestop-unavailable"
    assert gave_up.error.startswith("gave up after 6 attempts")


def test_the_consumer_hands_out_full_batches_and_flushes_a_partial_one_after_the_wait(rabbit_url, queue_prefix):
    topology = Topology(queue_prefix, (0.5, 1.0, 2.0))
    connection = connect(rabbit_url, "test")
    channel = connection.channel()
    topology.declare(channel)
    publisher = Publisher(channel, topology)
    for n in range(12):
        publisher.publish(topology.queue(DOWNLOAD), DossierIndexed(mahoso=f"M{n}", madonvi="U"))
    connection.close()

    sizes: list[int] = []

    def handle(batch):
        sizes.append(len(batch))
        return [Done() for _ in batch]

    consumer = Consumer(service="test", amqp_url=rabbit_url, topology=topology, stage=DOWNLOAD, handle=handle,
                        batch_size=5, batch_wait=0.5)
    thread = threading.Thread(target=consumer.run)
    thread.start()
    try:
        wait_for(lambda: sum(sizes) == 12, timeout=20, what="twelve messages handled")
    finally:
        consumer.stop()
        thread.join(30)
    assert sizes == [5, 5, 2]


def test_the_acker_marks_each_unit_in_one_call_and_a_poison_message_fails_alone(simulator_factory, tmp_path):
    sim = simulator_factory("--units", "2", "--dossiers", "12", "--files-per-dossier", "1", "--file-size", "1024")
    dossiers = [d for d in sim_dossiers(sim) if d["has_result"] and d["files"]]
    url = f"sqlite:///{tmp_path / 'dongbo.db'}"
    upgrade(url)
    client = OneStopClient(sim.api_url, "admin_sotaichinh", "1")
    deliveries = [Delivery(tag=i, body=DossierIndexed(mahoso=d["mahoso"], madonvi=d["madonvi"]).to_bytes(), headers={})
                  for i, d in enumerate(dossiers)]
    deliveries.insert(3, Delivery(tag=99, body=b"{}", headers={}))

    results = AckHandler(client, make_engine(url), batch_size=100)(deliveries)

    assert isinstance(results[3], PoisonMessage)
    assert all(isinstance(r, Done) for i, r in enumerate(results) if i != 3)
    stats = requests.get(sim.root + "/_sim/stats", timeout=10).json()
    assert stats["mark_calls"] == len({d["madonvi"] for d in dossiers}) == 2
    assert all(d["synced"] for d in sim_dossiers(sim) if d["mahoso"] in {x["mahoso"] for x in dossiers})


def test_a_chunk_is_confirmed_in_one_wait_and_a_deleted_queue_loses_nothing(rabbit_url, queue_prefix):
    """Sent messages are confirmed together; messages returned because their queue was deleted are sent
    again to the re-declared queue, and none counts as confirmed until its copy is."""
    topology = Topology(queue_prefix, (0.5, 1.0, 2.0))
    connection = connect(rabbit_url, "test")
    channel = connection.channel()
    topology.declare(channel)
    publisher = Publisher(channel, topology)
    first = [publisher.send(topology.queue(DOWNLOAD), DossierIndexed(mahoso=f"A{n}", madonvi="U")) for n in range(300)]
    publisher.confirm_all()
    assert all(publisher.is_confirmed(seq) for seq in first)

    other = connection.channel()
    other.queue_delete(topology.queue(DOWNLOAD))
    second = [publisher.send(topology.queue(DOWNLOAD), DossierIndexed(mahoso=f"B{n}", madonvi="U")) for n in range(50)]
    channel._flush_output(lambda: not publisher.unconfirmed)  # the broker returned and then acked every one
    assert len(publisher.returned) == 50
    assert not any(publisher.is_confirmed(seq) for seq in second)
    publisher.confirm_all()
    assert all(publisher.is_confirmed(seq) for seq in second)
    taken = []
    while (got := other.basic_get(topology.queue(DOWNLOAD), auto_ack=True))[0] is not None:
        taken.append(DossierIndexed.from_bytes(got[2]).mahoso)
    connection.close()
    assert sorted(taken) == sorted(f"B{n}" for n in range(50))


def test_the_fetcher_marks_only_dossiers_it_never_handed_on_as_new(
    simulator_factory, rabbit_url, queue_prefix, tmp_path
):
    """The mark lets a downloader skip looking for stored copies; a dossier handed on again must not carry it."""
    from datetime import timedelta

    from services.fetcher.poll import poll_unit
    from shared.broker.publisher import NEW_DOSSIER_HEADER

    sim = simulator_factory("--units", "1", "--dossiers", "20", "--files-per-dossier", "1", "--file-size", "1024")
    madonvi = sim_dossiers(sim)[0]["madonvi"]
    url = f"sqlite:///{tmp_path / 'dongbo.db'}"
    upgrade(url)
    engine = make_engine(url)
    topology = Topology(queue_prefix, (0.5, 1.0, 2.0))
    connection = connect(rabbit_url, "test")
    channel = connection.channel()
    topology.declare(channel)
    publisher = Publisher(channel, topology)
    client = OneStopClient(sim.api_url, "admin_sotaichinh", "1")

    def poll_and_take() -> list[dict]:
        # inflight_timeout=0: every dossier still in flight counts as stuck and is handed on again.
        poll_unit(client, publisher, engine, topology, madonvi, inflight_timeout=timedelta(0))
        taken = []
        while (got := channel.basic_get(topology.queue(DOWNLOAD), auto_ack=True))[0] is not None:
            taken.append(got[1].headers or {})
        return taken

    first, second = poll_and_take(), poll_and_take()
    connection.close()
    assert len(first) == len(second) > 0
    assert all(headers.get(NEW_DOSSIER_HEADER) is True for headers in first)
    assert not any(NEW_DOSSIER_HEADER in headers for headers in second)


def test_the_stored_state_is_written_in_batches_and_never_undoes_a_later_stage(tmp_path):
    from services.downloader.progress import StoredRecorder
    from shared.db import sync_state

    url = f"sqlite:///{tmp_path / 'dongbo.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        sync_state.record_published(connection, [(f"M{n}", "U", "h") for n in range(4)])
        sync_state.record_status(connection, ["M3"], sync_state.INDEXED)  # the indexer was quicker
    recorder = StoredRecorder(engine, every=0.2)
    for n in range(4):
        recorder.add(f"M{n}")

    def statuses():
        with engine.begin() as connection:
            return {m: s["status"] for m, s in sync_state.load(connection, [f"M{n}" for n in range(4)]).items()}

    wait_for(lambda: statuses()["M0"] == "stored", timeout=10, what="the batch written")
    assert statuses() == {"M0": "stored", "M1": "stored", "M2": "stored", "M3": "indexed"}
