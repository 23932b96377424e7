"""The same servers from testcontainers, where a Docker engine answers and a local server does not.

Used by harness/services.py only when the machine's own RabbitMQ / PostgreSQL are not answering, or when
DONGBO_TEST_DOCKER=1 asks for containers; the tests run the same way against either.
"""

from __future__ import annotations

import atexit
import functools
import os

RABBITMQ_IMAGE = os.environ.get("DONGBO_TEST_RABBITMQ_IMAGE", "rabbitmq:4-management")
POSTGRES_IMAGE = os.environ.get("DONGBO_TEST_POSTGRES_IMAGE", "postgres:16")
MINIO_IMAGE = os.environ.get("DONGBO_TEST_MINIO_IMAGE", "minio/minio:latest")


@functools.cache
def docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


def wanted() -> bool:
    return os.environ.get("DONGBO_TEST_DOCKER") == "1" and docker_available()


def _start(container):
    container.start()
    atexit.register(container.stop)
    return container


@functools.cache
def rabbitmq():
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = _start(DockerContainer(RABBITMQ_IMAGE).with_exposed_ports(5672))
    wait_for_logs(container, "Server startup complete", timeout=120)
    return container


def rabbitmq_url() -> str:
    container = rabbitmq()
    return f"amqp://guest:guest@{container.get_container_host_ip()}:{container.get_exposed_port(5672)}/%2F"


@functools.cache
def postgres():
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = _start(DockerContainer(POSTGRES_IMAGE).with_env("POSTGRES_HOST_AUTH_METHOD", "trust")
                       .with_exposed_ports(5432))
    wait_for_logs(container, "database system is ready to accept connections", timeout=120)
    return container


def postgres_admin_url() -> str:
    container = postgres()
    return f"postgresql+psycopg://postgres@{container.get_container_host_ip()}:{container.get_exposed_port(5432)}/postgres"


def minio(access_key: str, secret_key: str):
    from testcontainers.core.container import DockerContainer

    container = (DockerContainer(MINIO_IMAGE).with_command("server /data")
                 .with_env("MINIO_ROOT_USER", access_key).with_env("MINIO_ROOT_PASSWORD", secret_key)
                 .with_exposed_ports(9000))
    return _start(container)


def rabbitmqctl(*args: str) -> None:
    rabbitmq().exec(["rabbitmqctl", *args])


def restart_postgres() -> None:
    postgres().exec(["su", "postgres", "-c", "pg_ctl restart -m fast -D /var/lib/postgresql/data -w"])
