"""The publisher (shared/broker/publisher.py): a chunk confirmed in one wait; a deleted queue loses nothing."""

from __future__ import annotations

from shared.broker.connection import connect
from shared.broker.publisher import FLUSH_BYTES, Publisher
from shared.broker.topology import DOWNLOAD, Topology
from shared.messages import DossierFetched, DossierIndexed


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


def test_sent_messages_wait_for_the_next_turn_of_io_but_never_pile_up(rabbit_url, queue_prefix):
    """`send` only queues the frames (no write and poll per message); past FLUSH_BYTES of unwritten bodies
    they are written, so a long run of sends holds at most about that much, and every one arrives."""
    topology = Topology(queue_prefix, (0.5, 1.0, 2.0))
    connection = connect(rabbit_url, "test")
    channel = connection.channel()
    topology.declare(channel)
    publisher = Publisher(channel, topology)
    filler = "x" * 20_000
    message = DossierFetched(mahoso="M", madonvi="U", tenthutuc=filler)
    size = len(message.to_bytes())
    count = 3 * FLUSH_BYTES // size
    highest = 0
    for _ in range(count):
        publisher.send(topology.queue(DOWNLOAD), message)
        highest = max(highest, publisher.unwritten)
    assert highest < FLUSH_BYTES and 0 < publisher.unwritten < FLUSH_BYTES  # written twice along the way
    publisher.confirm_all()
    assert publisher.unwritten == 0 and not publisher.unconfirmed
    depth = channel.queue_declare(topology.queue(DOWNLOAD), passive=True).method.message_count
    connection.close()
    assert depth == count
