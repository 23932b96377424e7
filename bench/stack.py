"""The servers a run needs, and a fresh world for each measurement.

RabbitMQ and PostgreSQL are the ones on 127.0.0.1 (or DONGBO_TEST_AMQP_URL / DONGBO_TEST_PG_URL); the
S3 server is one SeaweedFS `weed mini` for the whole run (or DONGBO_TEST_S3_ENDPOINT), started by the
same helpers the end-to-end test uses. Each measurement gets its own simulator (seeded afresh, so no
dossier is already synced), its own bucket, database and queue prefix, so that no run skips work
another one did; all are removed afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pika

from bench.workloads import Corpus, Link, Workload
from harness import services
from harness.pipeline import Pipeline
from harness.services import S3Server, Simulator
from shared.broker.topology import Topology
from shared.db.engine import upgrade

RETRY_DELAYS = "0.5,1,2"


@dataclass
class Stack:
    s3: S3Server
    rabbit_url: str

    @classmethod
    def start(cls) -> Stack:
        rabbit_url = services.amqp_url()
        s3 = services.start_s3()
        return cls(s3, rabbit_url)

    @property
    def owns_store(self) -> bool:
        """The S3 server was started for this benchmark, and its data goes when it stops."""
        return bool(self.s3.data_dir)

    def stop(self) -> None:
        self.s3.stop()
        if self.s3.data_dir:
            shutil.rmtree(self.s3.data_dir, ignore_errors=True)


@dataclass
class World:
    """One measurement's simulator, bucket, database and queue prefix."""

    stack: Stack
    sim: Simulator
    corpus: Corpus
    bucket: str
    queue_prefix: str
    database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def pipeline(self, **env: str) -> Pipeline:
        return Pipeline.configure(sim=self.sim, units=self.corpus.units, rabbit_url=self.stack.rabbit_url,
                                  pg_url=self.database_url or "", s3=self.stack.s3, bucket=self.bucket,
                                  queue_prefix=self.queue_prefix, DONGBO_RETRY_DELAYS=RETRY_DELAYS, **env)

    def server_pids(self) -> dict[str, int | None]:
        """The simulator's and the S3 server's processes, whose CPU every measurement counts."""
        return {"simulator": self.sim.process.pid,
                "s3": self.stack.s3.process.pid if self.stack.s3.process else None}

    def synced_count(self) -> tuple[int, int]:
        """(synced, still pending) as the simulator counts them."""
        import requests

        stats = requests.get(self.sim.root + "/_sim/stats", timeout=30).json()
        return stats["synced"], stats["pending"]


@contextlib.contextmanager
def fresh_world(
    stack: Stack, workload: Workload, link: Link, *, database: bool, listing: bool = True, last: bool = False
) -> Iterator[World]:
    """A world for one measurement, removed afterwards. `last`: no other world follows on this stack, so the
    bucket of a store the benchmark owns is left for the store's own removal (emptying the 412,000 objects
    of a first sync one request at a time kept the S3 server busy for more than ten minutes)."""
    sim = services.start_simulator(
        *workload.sim_args(), *link.sim_args(), state_dir=tempfile.mkdtemp(prefix="dongbo-bench-sim-")
    )
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    try:
        corpus = Corpus.of(sim.root) if listing else Corpus.counted(sim.root, workload)
        stack.s3.client().make_bucket(bucket)
        with contextlib.ExitStack() as cleanup:
            url = None
            if database:
                url = cleanup.enter_context(services.fresh_database())
                upgrade(url)
            yield World(stack, sim, corpus, bucket, prefix, url)
    finally:
        sim.stop()
        shutil.rmtree(str(sim.log_path.parent), ignore_errors=True)
        if not (last and stack.owns_store):
            empty_bucket(stack.s3, bucket)
        delete_queues(stack.rabbit_url, prefix)


def empty_bucket(s3: S3Server, bucket: str) -> None:
    from minio.deleteobjects import DeleteObject

    client = s3.client()
    try:
        names = [DeleteObject(o.object_name) for o in client.list_objects(bucket, recursive=True)]
        for error in client.remove_objects(bucket, names):
            print(f"  (could not delete {error.name} from {bucket}: {error.message})")
        client.remove_bucket(bucket)
    except Exception as exc:  # cleaning up must not hide the measurement
        print(f"  (could not remove bucket {bucket}: {exc})")


def delete_queues(rabbit_url: str, prefix: str) -> None:
    topology = Topology(prefix, tuple(float(d) for d in RETRY_DELAYS.split(",")))
    try:
        connection = pika.BlockingConnection(pika.URLParameters(rabbit_url))
        channel = connection.channel()
        for name in topology.names():
            channel.queue_delete(name)
        connection.close()
    except Exception as exc:
        print(f"  (could not delete the queues of {prefix}: {exc})")
