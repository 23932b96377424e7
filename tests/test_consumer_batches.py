"""The consumer (shared/broker/consumer.py) against the real broker: full batches, and a partial one after its wait."""

from __future__ import annotations

import threading

from harness.services import wait_for
from shared.broker.connection import connect
from shared.broker.consumer import Consumer
from shared.broker.outcome import Done
from shared.broker.publisher import Publisher
from shared.broker.topology import DOWNLOAD, Topology
from shared.messages import DossierIndexed


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
