"""What the archive's checking commands (trace, reconcile, audit, export, inspect) share: opening the
database and the bucket with one clear line when they cannot be reached, and one progress display.

Exit codes are those of `shared.archive`: 0 all good, 1 gaps found, 2 could not run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from cli.common import one_line, redact_url
from shared.errors import ConfigError

T = TypeVar("T")


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


def read_database(settings, read: Callable[[Any], T]) -> T:
    """`read(engine)` on the database at the current schema, which is closed again afterwards."""
    engine = open_database(settings)
    try:
        return read(engine)
    finally:
        engine.dispose()


def open_archive(settings, args) -> tuple[Any, Any]:
    """(engine, store) for a command on a window of dates (`--from`, `--to`), checked first."""
    if args.start > args.end:
        raise ConfigError("--from is after --to")
    engine = open_database(settings)
    try:
        return engine, open_store(settings)
    except BaseException:
        engine.dispose()
        raise


def show(args, data: dict, text: Callable[[], str]) -> None:
    """The result: JSON for scripts (`--json`), else the text for a person."""
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text())


@contextmanager
def broker(settings, name: str):
    """A broker session (`shared.broker.session`) with the topology declared, closed afterwards; ConfigError
    when RabbitMQ cannot be reached."""
    from shared.broker.connection import CONNECTION_ERRORS
    from shared.broker.session import BrokerSession
    from shared.broker.topology import Topology

    url = settings.amqp_url.get_secret_value()
    try:
        session = BrokerSession.open(url, name, Topology.from_settings(settings), heartbeat=settings.heartbeat)
    except CONNECTION_ERRORS as exc:
        raise ConfigError(f"DONGBO_AMQP_URL: cannot connect to RabbitMQ at {redact_url(url)}: "
                          f"{one_line(exc)}") from None
    with session:
        yield session


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
