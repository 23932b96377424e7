"""The dead-letters page's two actions over `shared.broker.dead_letters`: read the parked messages (each
is given back at once) and replay those the operator picked — the same engine `dongbo dlq` uses."""

from __future__ import annotations

from shared.broker.dead_letters import DeadLetter, Selection, replay, scan
from shared.broker.topology import WORK_QUEUES, Topology

MAX_LISTED = 500


def _session(settings):
    from shared.broker.connection import connect
    from shared.broker.publisher import Publisher

    topology = Topology.from_settings(settings)
    connection = connect(settings.amqp_url.get_secret_value(), "web", settings.heartbeat)
    channel = connection.channel()
    topology.declare(channel)  # as `dongbo dlq` does: a queue nobody declared yet simply reads as empty
    return connection, channel, Publisher(channel, topology), topology


def list_letters(settings, selection: Selection, stages: tuple[str, ...] = WORK_QUEUES) -> list[DeadLetter]:
    letters: list[DeadLetter] = []

    def note(letter: DeadLetter) -> bool:
        letters.append(letter)
        return False  # given back when the pass ends

    connection, channel, publisher, topology = _session(settings)
    try:
        for stage in stages:
            scan(channel, publisher, topology, stage, selection, note, limit=MAX_LISTED - len(letters))
            if len(letters) >= MAX_LISTED:
                break
    finally:
        if connection.is_open:
            connection.close()
    return letters


def replay_letters(settings, selection: Selection, stages: tuple[str, ...] = WORK_QUEUES) -> list[DeadLetter]:
    """Replays every matching dead letter; returns them."""
    replayed: list[DeadLetter] = []
    connection, channel, publisher, topology = _session(settings)

    def act(letter: DeadLetter) -> bool:
        replay(publisher, topology, letter)
        replayed.append(letter)
        return True

    try:
        for stage in stages:
            scan(channel, publisher, topology, stage, selection, act)
    finally:
        if connection.is_open:
            connection.close()
    return replayed
