"""Timing and memory: a measurement's result, and peak RSS of the service processes sampled every 100 ms."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass, field

import psutil

SAMPLE_SECONDS = 0.1


@dataclass
class Result:
    """One measurement: a method moving one workload over one link."""

    link: str
    workload: str
    method: str  # plain-copy | sequential | pipeline
    workers: int | None  # downloader processes (pipeline), None otherwise
    threads: int  # download threads in all: workers × DONGBO_DOWNLOAD_CONCURRENCY, or the copy's pool
    dossiers: int
    files: int
    bytes: int
    wall_s: float
    synced: int | None = None  # dossiers the simulator counts as synced at the end (None: not applicable)
    startup_s: float | None = None  # pipeline: until every service was connected and consuming
    rss_mb: dict[str, dict] = field(default_factory=dict)  # service -> {"sum_of_peaks", "max_peak", "processes"}
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds (user + system) per process group
    stages_s: dict[str, float] = field(default_factory=dict)  # pipeline: when each stage finished, from start
    retries: int | None = None  # pipeline: deliveries sent to a retry queue (a fault, not the happy path)
    dead_letters: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def dossiers_per_s(self) -> float:
        return self.dossiers / self.wall_s if self.wall_s else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["dossiers_per_s"] = round(self.dossiers_per_s, 2)
        data["mb_per_s"] = round(self.mb_per_s, 2)
        data["wall_s"] = round(self.wall_s, 3)
        return data


class RssSampler:
    """Samples the RSS of named processes (and their children) in a thread; keeps each process's peak.

    `peaks()` gives, per service name, the sum of the peaks of its processes (what the service as a
    whole may need at worst), the largest single peak, and how many processes were seen.
    """

    def __init__(self, interval: float = SAMPLE_SECONDS):
        self.interval = interval
        self._watched: dict[int, tuple[str, psutil.Process]] = {}
        self._peak: dict[int, int] = {}
        self._cpu: dict[int, float] = {}  # the last CPU time seen (a process that has exited keeps it)
        self._history: dict[int, list[tuple[float, int]]] = {}  # (seconds since watched, rss)
        self._since: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def watch(self, service: str, pid: int) -> None:
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        with self._lock:
            self._watched[pid] = (service, process)
            self._since[pid] = time.monotonic()
        self._sample_one(pid, service, process)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                watched = list(self._watched.items())
            for pid, (service, process) in watched:
                self._sample_one(pid, service, process)

    def _sample_one(self, pid: int, service: str, process: psutil.Process) -> None:
        try:
            with process.oneshot():
                rss = process.memory_info().rss
                times = process.cpu_times()
                cpu = times.user + times.system
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += child.memory_info().rss
        except psutil.Error:
            return
        if rss > self._peak.get(pid, 0):
            self._peak[pid] = rss
        self._cpu[pid] = cpu
        self._history.setdefault(pid, []).append((time.monotonic() - self._since[pid], rss))

    def history(self, pid: int, every: float = 10.0) -> list[list[float]]:
        """[seconds, peak RSS MB within the window] every `every` seconds: does memory grow with the input?"""
        windows: dict[int, int] = {}
        for at, rss in self._history.get(pid, []):
            index = int(at // every)
            windows[index] = max(windows.get(index, 0), rss)
        return [[round((index + 1) * every, 1), round(rss / 1e6, 1)] for index, rss in sorted(windows.items())]

    def cpu(self) -> dict[str, float]:
        """CPU seconds per service, as last sampled."""
        by_service: dict[str, float] = {}
        with self._lock:
            for pid, (service, _) in self._watched.items():
                by_service[service] = round(by_service.get(service, 0.0) + self._cpu.get(pid, 0.0), 2)
        return by_service

    def peak_of(self, pid: int) -> int:
        return self._peak.get(pid, 0)

    def peaks(self) -> dict[str, dict]:
        by_service: dict[str, list[int]] = {}
        with self._lock:
            for pid, (service, _) in self._watched.items():
                by_service.setdefault(service, []).append(self._peak.get(pid, 0))
        return {
            service: {"sum_of_peaks": round(sum(values) / 1e6, 1), "max_peak": round(max(values) / 1e6, 1),
                      "processes": len(values)}
            for service, values in by_service.items()
        }


def wait_until(condition, *, timeout: float, interval: float = 0.2, what: str, check=None) -> float:
    """Polls `condition()` until true; returns the monotonic time it was first seen true.

    `check()` runs each turn and may raise to abort early (a service that died).
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.monotonic()
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class CpuDelta:
    """CPU seconds that long-running processes (simulator, S3 server, RabbitMQ) spent between start and stop."""

    def __init__(self, processes: dict[str, int | None]):
        self._processes = {}
        for name, pid in processes.items():
            if pid is None:
                continue
            with contextlib.suppress(psutil.Error):
                self._processes[name] = psutil.Process(pid)
        self._start = self._read()

    def _read(self) -> dict[str, float]:
        values = {}
        for name, process in self._processes.items():
            try:
                times = process.cpu_times()
                children = getattr(times, "children_user", 0) + getattr(times, "children_system", 0)
                values[name] = times.user + times.system + children
            except psutil.Error:
                pass
        return values

    def stop(self) -> dict[str, float]:
        end = self._read()
        return {name: round(end[name] - self._start[name], 2) for name in end if name in self._start}


def rabbitmq_pid(amqp_url: str) -> int | None:
    """The broker process listening on the AMQP port (only read, for its CPU time), if it can be seen."""
    from urllib.parse import urlsplit

    port = urlsplit(amqp_url).port or 5672
    try:
        for connection in psutil.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
                return connection.pid
    except psutil.Error:
        pass
    return None


class DatabaseCpu:
    """CPU seconds of the PostgreSQL backends serving one database (found by the database name in their
    process title), sampled every half second so that backends which exit are still counted."""

    def __init__(self, database_url: str | None, interval: float = 0.5):
        self.name = database_url.rsplit("/", 1)[-1] if database_url else None
        self.interval = interval
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-cpu", daemon=True)

    def __enter__(self) -> DatabaseCpu:
        if self.name:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> float:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return round(sum(self._cpu.values()), 2)

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.interval):
                self._sample()
                return

    def _sample(self) -> None:
        for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            try:
                if process.info["name"] != "postgres":
                    continue
                title = " ".join(process.info["cmdline"] or [])
                if f" {self.name} " not in f" {title} ":
                    continue
                times = process.info["cpu_times"]
                self._cpu[process.pid] = times.user + times.system
            except psutil.Error:
                continue
