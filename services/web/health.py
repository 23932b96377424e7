"""The state of the four systems dongbo depends on — RabbitMQ, S3, the database, the one-stop system —
checked side by side with short time-outs and remembered briefly, so the dashboard stays fast and a
store that is down costs a few seconds at most, once per CACHE_SECONDS."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from sqlalchemy import text

CACHE_SECONDS = 15.0
TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _one_line(exc: BaseException) -> str:
    from cli.common import one_line

    return one_line(exc)


class HealthChecks:
    def __init__(self, settings, engine, store):
        self.settings, self.engine, self.store = settings, engine, store
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Check]] | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")

    def results(self) -> list[Check]:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
        checks = [("RabbitMQ", self._rabbitmq), ("S3", self._s3), ("Cơ sở dữ liệu", self._database),
                  ("Hệ thống một cửa", self._onestop)]
        futures = {self._pool.submit(self._guarded, name, check): name for name, check in checks}
        done, _ = wait(futures, timeout=TIMEOUT + 1)
        results = [f.result() if f in done else Check(futures[f], False, "không trả lời kịp") for f in futures]
        with self._lock:
            self._cached = (time.monotonic(), results)
        return results

    @staticmethod
    def _guarded(name: str, check) -> Check:
        try:
            return Check(name, True, check())
        except Exception as exc:  # any failure is the answer to show, not an error of the page
            return Check(name, False, _one_line(exc))

    def _rabbitmq(self) -> str:
        from shared.broker.connection import connect

        # The same connect() as the services: several broker addresses are tried in turn.
        connection = connect(self.settings.amqp_url.get_secret_value(), "web-health", heartbeat=0)
        try:
            version = connection._impl.server_properties.get("version", b"")
            return "đang chạy " + (version.decode() if isinstance(version, bytes) else str(version))
        finally:
            connection.close()

    def _s3(self) -> str:
        if not self.store.client.bucket_exists(self.store.bucket):
            raise RuntimeError(f"không có bucket {self.store.bucket}")
        return f"bucket {self.store.bucket}"

    def _database(self) -> str:
        from shared.db.engine import current_revision

        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return f"phiên bản lược đồ {current_revision(self.engine)}"

    def _onestop(self) -> str:
        import requests

        url = self.settings.onestop_url
        if not url:
            raise RuntimeError("chưa cấu hình DONGBO_ONESTOP_URL")
        response = requests.get(url, timeout=TIMEOUT, verify=self.settings.onestop_verify_tls,
                                allow_redirects=False)
        if response.status_code >= 500:
            raise RuntimeError(f"HTTP {response.status_code}")
        return f"trả lời (HTTP {response.status_code})"
