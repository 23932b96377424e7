"""Running the four services as separate processes against real servers, and reading what they did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy

from harness.services import ROOT, S3Server, Simulator, wait_for


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no chance to finish anything."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout: float = 60) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Pipeline:
    """The four services with one configuration; each `start` adds a process."""

    env: dict[str, str]
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dongbo-logs-")))
    processes: list[ServiceProcess] = field(default_factory=list)

    @classmethod
    def configure(cls, *, sim: Simulator, units: list[str], rabbit_url: str, pg_url: str, s3: S3Server, bucket: str,
                  queue_prefix: str, **extra: str) -> Pipeline:
        env = {
            "DONGBO_ONESTOP_URL": sim.api_url,
            "DONGBO_ONESTOP_USERNAME": "admin_sotaichinh",
            "DONGBO_ONESTOP_PASSWORD": "1",
            "DONGBO_UNITS": ",".join(units),
            "DONGBO_AMQP_URL": rabbit_url,
            "DONGBO_DATABASE_URL": pg_url,
            "DONGBO_S3_ENDPOINT": s3.endpoint,
            "DONGBO_S3_ACCESS_KEY": s3.access_key,
            "DONGBO_S3_SECRET_KEY": s3.secret_key,
            "DONGBO_S3_BUCKET": bucket,
            "DONGBO_QUEUE_PREFIX": queue_prefix,
            "DONGBO_ALLOWED_FILE_HOSTS": "127.0.0.1",
            "DONGBO_POLL_INTERVAL": "2",
            "DONGBO_INFLIGHT_TIMEOUT": "600",
            "DONGBO_ACK_BATCH_SECONDS": "0.5",
            "DONGBO_RETRY_DELAYS": "0.5,1,2",
            "DONGBO_LOG_JSON": "true",
            "DONGBO_LOG_LEVEL": "INFO",
        }
        env.update(extra)
        return cls(env)

    def dongbo(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs one `dongbo` command to completion with this configuration."""
        result = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=self._environ(),
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"dongbo {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def start(self, service: str, *args: str, **env: str) -> ServiceProcess:
        index = sum(1 for p in self.processes if p.name == service)
        log_path = self.log_dir / f"{service}-{index}.log"
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}", *args],
                cwd=ROOT,
                env=self._environ(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = ServiceProcess(service, process, log_path)
        self.processes.append(started)
        return started

    def start_all(self, downloaders: int = 3, inspectors: int = 1) -> None:
        """Every service; the inspector too, since the indexer asks it about every file it commits."""
        self.start("fetcher")
        for _ in range(downloaders):
            self.start("downloader")
        self.start("indexer")
        self.start("acker")
        for _ in range(inspectors):
            self.start("inspector")

    def stop_all(self) -> None:
        for process in self.processes:
            process.terminate()

    def logs_whole(self) -> str:
        return "\n".join(p.log() for p in self.processes)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-5000:]}" for p in self.processes)

    def _environ(self, **extra: str) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DONGBO_")}
        environ.update(self.env)
        environ.update(extra)
        environ["PYTHONPATH"] = str(ROOT)
        return environ


def sim_dossiers(sim: Simulator) -> list[dict]:
    return requests.get(sim.root + "/_sim/dossiers", timeout=60).json()


def expected_dossiers(sim: Simulator) -> list[dict]:
    """What the pipeline must bring in: every dossier with a result and files, poison ones aside."""
    return [d for d in sim_dossiers(sim) if d["has_result"] and d["files"] and not d["poison"]]


def wait_until_synced(sim: Simulator, pipeline: Pipeline, count: int, timeout: float) -> None:
    def all_synced():
        dead = [p for p in pipeline.processes if not p.alive() and p.process.returncode not in (0, -9, -15)]
        if dead:
            raise AssertionError(f"{dead[0].name} exited {dead[0].process.returncode}:\n{dead[0].log()[-3000:]}")
        return sum(1 for d in expected_dossiers(sim) if d["synced"]) >= count

    try:
        wait_for(all_synced, timeout=timeout, interval=0.5, what=f"{count} dossiers marked synced")
    except AssertionError:
        print(pipeline.logs())
        raise


def database_rows(pg_url: str) -> tuple[list[dict], list[dict]]:
    engine = sqlalchemy.create_engine(pg_url)
    with engine.connect() as connection:
        ho_so = [dict(r) for r in connection.execute(sqlalchemy.text("SELECT * FROM ho_so")).mappings()]
        tai_lieu = [dict(r) for r in connection.execute(sqlalchemy.text("SELECT * FROM tai_lieu")).mappings()]
    engine.dispose()
    return ho_so, tai_lieu


def queue_depths(rabbit_url: str, names: list[str]) -> dict[str, int]:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(rabbit_url))
    channel = connection.channel()
    depths = {name: channel.queue_declare(name, passive=True).method.message_count for name in names}
    connection.close()
    return depths
