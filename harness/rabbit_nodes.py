"""RabbitMQ nodes of a test's own: one broker, or a cluster of three, started from the installed
rabbitmq-server on free ports, so that a test may stop, kill or partition them without touching the
machine's own broker.

Each node gets its own node name (`dongbo-<id>-<n>@localhost`), AMQP and distribution ports, data and log
directories under a temporary folder, and an empty plugin list (fast start). The nodes run as the
`rabbitmq` user when the test runs as root, and share that user's Erlang cookie, as the nodes of a real
cluster do; epmd is shared with the machine's broker, which only sees a few more node names registered.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from harness.services import MissingService, free_port, port_open, wait_for

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def _available() -> None:
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        raise MissingService(f"rabbitmq-server is not installed ({RABBIT_BIN}): a test needs brokers of its own")


def _as_broker_user() -> list[str]:
    """The prefix that runs a command as the `rabbitmq` user (its home holds the Erlang cookie)."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "rabbitmq", "--"]


def _broker_home() -> str:
    try:
        return pwd.getpwnam("rabbitmq").pw_dir
    except KeyError:
        return os.path.expanduser("~")


@dataclass
class RabbitNode:
    """One broker node of a test's own."""

    name: str
    amqp_port: int
    dist_port: int
    base: Path

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    def _env(self) -> dict[str, str]:
        return {
            "HOME": _broker_home(),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
        }

    def ctl(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Runs `rabbitmqctl -n <this node> ARGS`."""
        command = [*_as_broker_user(), "env", *(f"{k}={v}" for k, v in self._env().items()),
                   str(RABBIT_BIN / "rabbitmqctl"), "-n", self.name, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=check)

    def write_config(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            "loopback_users = none\n"
            # The cluster must keep serving with one node of three down.
            "cluster_partition_handling = pause_minority\n"
        )
        (self.base / "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0:
            shutil.chown(self.base, "rabbitmq", "rabbitmq")
            for path in self.base.iterdir():
                shutil.chown(path, "rabbitmq", "rabbitmq")

    def start(self, timeout: float = 90) -> None:
        """Starts the node in the background and waits until it takes AMQP connections."""
        command = [*_as_broker_user(), "env", *(f"{k}={v}" for k, v in self._env().items()),
                   str(RABBIT_BIN / "rabbitmq-server"), "-detached"]
        subprocess.run(command, check=True, timeout=60, cwd=_broker_home(), capture_output=True)
        # `await_startup` fails at once while the VM is still booting: ask again until it answers.
        wait_for(lambda: self.ctl("await_startup", check=False, timeout=timeout).returncode == 0,
                 timeout=timeout, interval=1.0, what=f"{self.name} to boot")
        wait_for(lambda: port_open("127.0.0.1", self.amqp_port), timeout=timeout, what=f"{self.name} to listen")

    def stop(self) -> None:
        """A clean stop (the node leaves the cluster's running set but stays a member)."""
        self.ctl("stop", check=False, timeout=120)
        wait_for(lambda: not port_open("127.0.0.1", self.amqp_port), timeout=60, what=f"{self.name} to stop")

    def kill(self) -> None:
        """kill -9 of the node's Erlang VM: a crash, not a shutdown."""
        pid_file = self.base / "pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip())
            with suppress(ProcessLookupError):
                os.kill(pid, 9)
        wait_for(lambda: not port_open("127.0.0.1", self.amqp_port), timeout=30, what=f"{self.name} to die")

    def running(self) -> bool:
        return port_open("127.0.0.1", self.amqp_port)


@dataclass
class RabbitCluster:
    nodes: list[RabbitNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Every node's address, comma-separated: what DONGBO_AMQP_URL takes for a cluster."""
        return ",".join(node.url for node in self.nodes)

    def leader_of(self, queue: str) -> RabbitNode:
        """The node that leads quorum queue `queue` now."""
        for node in self.nodes:
            if not node.running():
                continue
            listing = node.ctl("list_queues", "--quiet", "--no-table-headers", "name", "leader", check=False)
            for line in listing.stdout.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == queue:
                    return next(n for n in self.nodes if n.name == parts[1])
        raise AssertionError(f"no running node knows a leader for {queue}")

    def stop(self) -> None:
        for node in self.nodes:
            if node.running():
                node.ctl("stop", check=False, timeout=60)


def _new_node(root: Path, label: str) -> RabbitNode:
    amqp = free_port()
    dist = free_port()
    return RabbitNode(name=f"{label}@localhost", amqp_port=amqp, dist_port=dist, base=root / label)


@contextmanager
def rabbit_node() -> Iterator[RabbitNode]:
    """A single broker node of the test's own, stopped and removed afterwards."""
    _available()
    root = Path(tempfile.mkdtemp(prefix="dongbo-rabbit-"))
    node = _new_node(root, f"dongbo-{uuid.uuid4().hex[:8]}")
    try:
        node.write_config()
        node.start()
        yield node
    finally:
        if node.running():
            node.ctl("stop", check=False, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def rabbit_cluster(size: int = 3) -> Iterator[RabbitCluster]:
    """`size` broker nodes joined into one cluster, stopped and removed afterwards."""
    _available()
    root = Path(tempfile.mkdtemp(prefix="dongbo-cluster-"))
    if os.geteuid() == 0:
        shutil.chown(root, "rabbitmq", "rabbitmq")
    run_id = uuid.uuid4().hex[:8]
    cluster = RabbitCluster([_new_node(root, f"dongbo-{run_id}-{n}") for n in range(1, size + 1)])
    try:
        for node in cluster.nodes:
            node.write_config()
            node.start()
        first = cluster.nodes[0]
        for node in cluster.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = first.ctl("cluster_status", "--formatter", "json", check=False).stdout
            if all(node.name in status for node in cluster.nodes) and status.count("@localhost") >= size:
                break
            time.sleep(0.5)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
