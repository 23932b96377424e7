"""`dongbo backfill`: pulls a historical range of dates through the pipeline, one date window at a time.

Each window is one sync call with `tungay`/`denngay` (by the date received), handed on exactly like a poll
of the fetcher: new dossiers go to the download queue and into `sync_state`. A finished window is recorded
in `backfill_window`, so a rerun after an interruption skips every window already covered and redoes at
most the one it was in (the pipeline ignores dossiers already on their way). Each query also reaches back
`--overlap-days` before its window, so a dossier near an edge is not missed if the one-stop system reads
the dates a little differently (time zone, inclusive or exclusive ends).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from cli.common import one_line, operator_command, redact_url
from shared.errors import ConfigError, DongboError

if TYPE_CHECKING:
    from sqlalchemy import Table

DAY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def add_parser(commands) -> None:
    parser = commands.add_parser("backfill", help="pull a past range of dates through the pipeline (resumable)")
    parser.add_argument("--unit", action="append", default=[], metavar="MADONVI",
                        help="the unit to backfill (repeatable; default: every unit of DONGBO_UNITS)")
    parser.add_argument("--from", dest="start", required=True, type=day, metavar="DD/MM/YYYY",
                        help="first date received to include")
    parser.add_argument("--to", dest="end", required=True, type=day, metavar="DD/MM/YYYY",
                        help="last date received to include")
    parser.add_argument("--window-days", type=_at_least(1), default=7, help="days per sync call (default 7)")
    parser.add_argument("--overlap-days", type=_at_least(0), default=1,
                        help="days each call reaches back before its window (default 1)")
    parser.add_argument("--restart", action="store_true", help="forget the finished windows of this range first")
    parser.set_defaults(handler=operator_command("backfill", run_backfill))


def day(text: str) -> date:
    match = DAY.fullmatch(text.strip())
    try:
        if not match:
            raise ValueError
        return date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as dd/mm/yyyy") from None


def _at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


def windows(start: date, end: date, days: int) -> list[tuple[date, date]]:
    """Consecutive inclusive windows of `days` days covering start..end; the last may be shorter."""
    result = []
    while start <= end:
        last = min(start + timedelta(days=days - 1), end)
        result.append((start, last))
        start = last + timedelta(days=1)
    return result


def covered(window: tuple[date, date], finished: list[tuple[date, date]]) -> bool:
    """True when the finished windows (of any size, from earlier runs) cover every day of `window`."""
    day_, end = window
    for start, last in sorted(finished):
        if start <= day_ <= last:
            day_ = last + timedelta(days=1)
        if day_ > end:
            return True
    return day_ > end


def _vn(value: date) -> str:
    return value.strftime("%d/%m/%Y")


class Progress:
    """One line on stderr, rewritten in place on a terminal and printed per window elsewhere (logs)."""

    def __init__(self, total: int):
        self.total, self.done, self.dossiers, self.handed_on = total, 0, 0, 0
        self.tty = sys.stderr.isatty()
        self.width = 0

    def show(self, text: str, starting: bool = False) -> None:
        """`starting`: a window is being read (shown on a terminal only; a log gets one line per window)."""
        if starting and not self.tty:
            return
        line = (f"backfill: windows {self.done}/{self.total}, {self.dossiers} dossiers "
                f"({self.handed_on} handed on) {text}")
        if self.tty:
            sys.stderr.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def end_line(self) -> None:
        if self.tty and self.width:
            sys.stderr.write("\n")
            self.width = 0


def run_backfill(settings, args: argparse.Namespace) -> int:
    if args.start > args.end:
        raise ConfigError(f"--from {_vn(args.start)} is after --to {_vn(args.end)}")
    units = list(dict.fromkeys(args.unit or settings.units))
    if not units:
        raise ConfigError("give --unit, or set DONGBO_UNITS")
    plan = windows(args.start, args.end, args.window_days)
    store = WindowStore(settings)
    try:
        if args.restart:
            forgotten = sum(store.forget(unit, args.start, args.end) for unit in units)
            print(f"forgot {forgotten} finished windows of {_vn(args.start)}–{_vn(args.end)}")
        return Backfill(settings, store, units, plan, args).run()
    finally:
        store.close()


class WindowStore:
    """The `backfill_window` table: which windows of which unit are finished."""

    def __init__(self, settings):
        from cli.checking import open_database

        self.engine = open_database(settings)

    @property
    def table(self) -> Table:
        from shared.db.models import BackfillWindow

        return BackfillWindow.__table__  # type: ignore[attr-defined]  # set by SQLModel, not in its stubs

    def finished(self, madonvi: str, start: date, end: date) -> list[tuple[date, date]]:
        from sqlalchemy import select

        t = self.table
        with self.engine.connect() as connection:
            rows = connection.execute(select(t.c.tungay, t.c.denngay).where(
                t.c.madonvi == madonvi, t.c.denngay >= start, t.c.tungay <= end))
            return [(row[0], row[1]) for row in rows]

    def record(self, madonvi: str, window: tuple[date, date], dossiers: int) -> None:
        from shared.db.sync_state import insert_for

        values = {"dossiers": dossiers, "finished_at": datetime.now(UTC)}
        with self.engine.begin() as connection:
            stmt = insert_for(connection, self.table).values(
                madonvi=madonvi, tungay=window[0], denngay=window[1], **values
            )
            connection.execute(stmt.on_conflict_do_update(index_elements=["madonvi", "tungay", "denngay"], set_=values))

    def forget(self, madonvi: str, start: date, end: date) -> int:
        from sqlalchemy import delete

        t = self.table
        with self.engine.begin() as connection:
            return connection.execute(
                delete(t).where(t.c.madonvi == madonvi, t.c.denngay >= start, t.c.tungay <= end)
            ).rowcount

    def close(self) -> None:
        self.engine.dispose()


class Backfill:
    def __init__(self, settings, store: WindowStore, units: list[str], plan: list[tuple[date, date]], args):
        self.settings, self.store, self.units, self.plan, self.args = settings, store, units, plan, args
        self.progress = Progress(len(units) * len(plan))
        self.skipped = self.invalid = 0

    def run(self) -> int:
        from sqlalchemy.exc import SQLAlchemyError

        from shared.broker.connection import CONNECTION_ERRORS
        from shared.broker.session import BrokerSession
        from shared.broker.topology import Topology
        from shared.onestop import OneStopClient

        settings = self.settings
        client = OneStopClient.from_settings(settings)
        url = settings.amqp_url.get_secret_value()
        topology = Topology.from_settings(settings)
        started = time.monotonic()
        current = "starting"
        try:
            session = BrokerSession.open(url, "backfill", topology, heartbeat=settings.heartbeat)
        except CONNECTION_ERRORS as exc:
            client.close()
            print(f"dongbo backfill: cannot connect to RabbitMQ at {redact_url(url)}: {one_line(exc)}", file=sys.stderr)
            return 1
        try:
            for unit in self.units:
                finished = self.store.finished(unit, self.plan[0][0], self.plan[-1][1])
                for window in self.plan:
                    current = f"unit {unit} {_vn(window[0])}–{_vn(window[1])}"
                    if covered(window, finished):
                        self.skipped += 1
                        self.progress.done += 1
                        self.progress.show(f"{current}: finished earlier")
                        continue
                    self.progress.show(f"{current}: reading", starting=True)
                    self.pull(client, session.publisher, topology, unit, window)
                    self.progress.done += 1
                    self.progress.show(current)
                    session.connection.process_data_events(0)  # heartbeats, between two long calls
        except KeyboardInterrupt:
            self.progress.end_line()
            print(
                f"dongbo backfill: interrupted at {current}; {self.progress.done} windows finished are kept; "
                "run the same command again to resume",
                file=sys.stderr,
            )
            return 130
        except (DongboError, SQLAlchemyError, *CONNECTION_ERRORS) as exc:
            self.progress.end_line()
            reason = f" ({exc.reason})" if isinstance(exc, DongboError) else ""
            print(
                f"dongbo backfill: {current} failed{reason}: {one_line(exc)}; the {self.progress.done} windows "
                "finished are kept; run the same command again to resume",
                file=sys.stderr,
            )
            return 1
        finally:
            client.close()
            session.close()
        self.progress.end_line()
        p = self.progress
        print(
            f"backfill done in {time.monotonic() - started:.1f}s: {p.total} windows ({self.skipped} finished earlier), "
            f"{p.dossiers} dossiers returned, {p.handed_on} handed on, {self.invalid} malformed"
        )
        return 0

    def pull(self, client, publisher, topology, unit: str, window: tuple[date, date]) -> None:
        from shared.handoff import poll_unit
        from shared.onestop.dossier_items import ItemLimits

        # The first window does not reach before --from: nothing earlier was asked for.
        query_from = max(self.plan[0][0], window[0] - timedelta(days=self.args.overlap_days))
        result = poll_unit(
            client,
            publisher,
            self.store.engine,
            topology,
            unit,
            inflight_timeout=timedelta(seconds=self.settings.inflight_timeout),
            tungay=query_from,
            denngay=window[1],
            limits=ItemLimits.from_settings(self.settings),
        )
        self.store.record(unit, window, result.seen)
        self.progress.dossiers += result.seen
        self.progress.handed_on += result.published
        self.invalid += result.invalid
