"""Fixtures over real servers: each test run gets its own RabbitMQ vhost, each test its own queue prefix,
bucket and database; what a test run made on the machine's servers is removed when it ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from harness import services


@pytest.fixture(scope="session")
def rabbit_url():
    """The broker, on a vhost of this test run's own: nothing the tests declare can meet anyone else's
    queues, and deleting the vhost at the end removes every queue the run left behind."""
    with services.own_vhost(services.amqp_url()) as url:
        yield url


@pytest.fixture(scope="session")
def s3_server():
    server = services.start_s3()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server) -> str:
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_server.client().make_bucket(name)
    return name


@pytest.fixture
def pg_url():
    with services.fresh_database() as url:
        yield url


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of the test's own, for a test that restarts or kills the database server."""
    server = services.start_postgres_server()
    yield server
    server.remove()


@pytest.fixture
def queue_prefix(rabbit_url) -> Iterator[str]:
    """A fresh queue prefix per test, so no test sees another's messages; its queues go afterwards
    (each quorum queue costs the broker a process and a log, so they must not pile up until the vhost goes)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    services.delete_topologies(rabbit_url, prefix)


@pytest.fixture
def simulator_factory():
    """Starts simulators with given options; all are stopped after the test."""
    started: list[services.Simulator] = []

    def start(*args: str, **kwargs) -> services.Simulator:
        sim = services.start_simulator(*args, **kwargs)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
