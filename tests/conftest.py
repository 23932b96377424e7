"""Fixtures over real servers: each test gets its own queue prefix, bucket and database."""

from __future__ import annotations

import uuid

import pytest

from harness import services


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    return services.amqp_url()


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
def pg_url() -> str:
    with services.fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def _queue_prefixes(rabbit_url):
    """Every prefix handed out; their queues are deleted when the session ends."""
    prefixes: list[str] = []
    yield prefixes
    services.delete_queues(rabbit_url, prefixes)


@pytest.fixture
def queue_prefix(_queue_prefixes, rabbit_url) -> str:
    """A fresh queue prefix per test, so no test sees another's messages; its queues go afterwards
    (each quorum queue costs the broker a process and a log, so they must not pile up)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _queue_prefixes.append(prefix)
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
