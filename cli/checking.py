"""What the archive's checking commands (trace, reconcile, audit, export, inspect) share: opening the
database and the bucket with one clear line when they cannot be reached, and one progress display.

Exit codes are those of `shared.archive`: 0 all good, 1 gaps found, 2 could not run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cli.common import one_line, redact_url
from shared.errors import ConfigError


def open_database(settings):
    """An engine on a database at the current schema, or ConfigError (exit 2) saying what is wrong."""
    from shared.db.engine import current_revision, make_engine, schema_problem

    url = settings.database_url.get_secret_value()
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
    except Exception as exc:
        engine.dispose()
        raise ConfigError(f"DONGBO_DATABASE_URL: cannot read {redact_url(url)}: {one_line(exc)}") from None
    if problem := schema_problem(revision):
        engine.dispose()
        raise ConfigError(f"DONGBO_DATABASE_URL: {problem}")
    return engine


def open_store(settings):
    """The bucket, checked to exist (a wrong name or endpoint is a setting problem, exit 2)."""
    from shared.storage.objects import ObjectStore

    store = ObjectStore.from_settings(settings)
    try:
        exists = store.client.bucket_exists(store.bucket)
    except Exception as exc:
        raise ConfigError(f"DONGBO_S3_ENDPOINT: cannot reach {settings.s3_endpoint}: {one_line(exc)}") from None
    if not exists:
        raise ConfigError(f"DONGBO_S3_BUCKET: bucket {store.bucket} does not exist")
    return store


@contextmanager
def broker(settings, name: str):
    """(channel, publisher, topology) on a fresh connection, closed afterwards."""
    from shared.broker.connection import CONNECTION_ERRORS, connect
    from shared.broker.publisher import Publisher
    from shared.broker.topology import Topology

    url = settings.amqp_url.get_secret_value()
    try:
        connection = connect(url, name, settings.heartbeat)
    except CONNECTION_ERRORS as exc:
        raise ConfigError(f"DONGBO_AMQP_URL: cannot connect to RabbitMQ at {redact_url(url)}: "
                          f"{one_line(exc)}") from None
    try:
        topology = Topology.from_settings(settings)
        channel = connection.channel()
        topology.declare(channel)
        yield channel, Publisher(channel, topology), topology
    finally:
        if connection.is_open:
            connection.close()


class Progress:
    """A progress bar on a terminal (rich, on stderr); silent otherwise, so logs and pipes stay clean."""

    def __init__(self, what: str, total: int | None = None, unit: str = "items", enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.what, self.total, self.unit = what, total, unit
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.what, total=self.total)
        return self

    def advance(self, amount: int = 1, note: str | None = None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=amount,
                                  description=f"{self.what} {note}" if note else self.what)

    def set_total(self, total: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total)

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()


def iterate(items, progress: Progress) -> Iterator:
    for item in items:
        yield item
        progress.advance()
