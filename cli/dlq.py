"""`dongbo dlq list | show | replay | purge`: the dead-letter queues of the three stages.

This module parses the arguments, connects, and says what happened; reading and settling the dead letters
is `shared.broker.dead_letters`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cli.common import one_line, operator_command, redact_url, table
from shared.broker.dead_letters import REFRESH_AFTER, DeadLetter, Selection, purge, replay, scan
from shared.broker.topology import WORK_QUEUES, Topology
from shared.onestop.dossier_items import ItemLimits

if TYPE_CHECKING:
    from shared.broker.publisher import Publisher

EPILOGS = {
    "replay": " Safe while the services run: each message is published to its work queue, confirmed, before its "
              "dead letter is removed. An interruption can at worst leave one message both replayed and still in "
              "the dead-letter queue; replaying it again is harmless.",
    "purge": " Asks for confirmation unless --yes is given.",
}


def add_parser(commands) -> None:
    parser = commands.add_parser("dlq", help="list, show, replay or purge dead letters")
    actions = parser.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    helps = {
        "list": "count dead letters per queue and reason",
        "show": "print the dead letters with their reason and error",
        "replay": "move dead letters back to their work queue with a fresh attempt count",
        "purge": "delete dead letters for good",
    }
    for name, text in helps.items():
        action = actions.add_parser(name, help=text, description=text + "." + EPILOGS.get(name, ""))
        action.add_argument("--queue", choices=(*WORK_QUEUES, "all"), default="all",
                            help="the stage whose dead-letter queue to read (default: all)")
        action.add_argument("--unit", action="append", default=[], metavar="MADONVI", help="only this unit's")
        action.add_argument("--reason", action="append", default=[], metavar="REASON",
                            help="only this reason (e.g. file-not-found, delivery-limit)")
        action.add_argument("--mahoso", action="append", default=[], metavar="MAHOSO", help="only this dossier")
        action.add_argument("--limit", type=_positive, metavar="N", help="stop after N matching messages")
        action.add_argument("--json", action="store_true", help="print JSON for scripts")
        if name == "show":
            action.add_argument("--body", action="store_true", help="print each message's body too")
        if name in ("replay", "purge"):
            action.add_argument("--dry-run", action="store_true", help="say what would happen; change nothing")
        if name == "purge":
            action.add_argument("--yes", action="store_true", help="delete without asking")
    parser.set_defaults(handler=operator_command("dlq", run_dlq))


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def run_dlq(settings, args: argparse.Namespace) -> int:
    import pika.exceptions

    from shared.broker.connection import CONNECTION_ERRORS
    from shared.broker.session import BrokerSession

    if args.dlq_command == "purge" and not (args.yes or args.dry_run) and not _confirmed(args):
        print("dongbo dlq: purge deletes dead letters for good; add --yes (see them first with `dongbo dlq show`)",
              file=sys.stderr)
        return 2
    topology = Topology.from_settings(settings)
    stages = WORK_QUEUES if args.queue == "all" else (args.queue,)
    selection = Selection(set(args.unit), set(args.reason), set(args.mahoso))
    url = settings.amqp_url.get_secret_value()
    try:
        # Declares the topology: a missing dead-letter or work queue is created, as the services would.
        session = BrokerSession.open(url, "dlq", topology, heartbeat=settings.heartbeat)
    except pika.exceptions.ChannelClosedByBroker as exc:
        print(f"dongbo dlq: declaring the queues failed ({one_line(exc)}); do DONGBO_QUEUE_PREFIX, "
              "DONGBO_RETRY_DELAYS and DONGBO_DELIVERY_LIMIT match the services' settings?", file=sys.stderr)
        return 1
    except CONNECTION_ERRORS as exc:
        print(f"dongbo dlq: cannot connect to RabbitMQ at {redact_url(url)}: {one_line(exc)}", file=sys.stderr)
        return 1
    channel, publisher = session.channel, session.publisher
    command = COMMANDS[args.dlq_command](args, topology, publisher)
    if isinstance(command, Replaying):
        # A dossier the fetcher parked is validated again against the limits the fetcher runs with.
        command.limits = ItemLimits.from_settings(settings)
    try:
        for stage in stages:
            limit = None if args.limit is None else args.limit - command.matched
            if limit == 0:
                break
            # Passed on, not left to scan's default, so a value set on cli.dlq.REFRESH_AFTER takes effect.
            scan(channel, publisher, topology, stage, selection, command.act, limit, refresh_after=REFRESH_AFTER)
    except CONNECTION_ERRORS as exc:
        print(f"dongbo dlq: lost RabbitMQ ({one_line(exc)}) {command.interrupted()}", file=sys.stderr)
        return 1
    except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as exc:  # e.g. a work queue at its limit
        print(f"dongbo dlq: the broker refused a message ({one_line(exc)}) {command.interrupted()}", file=sys.stderr)
        return 1
    finally:
        session.close()
    command.finish(stages)
    return 0


def _confirmed(args) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input("Delete the matching dead letters for good? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


class Listing:
    """`list`: counts by queue and reason; every message is given back."""

    def __init__(self, args, topology: Topology, publisher: Publisher):
        self.args, self.topology, self.matched = args, topology, 0
        self.publisher = publisher
        self.counts: dict[str, Counter] = {}
        self.units: Counter = Counter()

    def act(self, letter: DeadLetter) -> bool:
        self.matched += 1
        self.counts.setdefault(letter.dlq, Counter())[letter.reason] += 1
        self.units[letter.madonvi or "-"] += 1
        return False

    def interrupted(self) -> str:
        return "; every dead letter stays where it was"

    def finish(self, stages) -> None:
        queues = {self.topology.dead_letter_queue(s): self.counts.get(self.topology.dead_letter_queue(s), Counter())
                  for s in stages}
        reasons = sum(queues.values(), Counter())
        if self.args.json:
            print(
                json.dumps(
                    {
                        "queues": {
                            q: {"messages": sum(c.values()), "reasons": dict(c.most_common())}
                            for q, c in queues.items()
                        },
                        "reasons": dict(reasons.most_common()),
                        "units": dict(self.units.most_common()),
                        "total": self.matched,
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )
            return
        rows: list[list[object]] = []
        for queue, counts in queues.items():
            rows.extend([queue, reason, n] for reason, n in counts.most_common())
            if not counts:
                rows.append([queue, "-", 0])
        rows.append(["total", "", self.matched])
        print(table(["QUEUE", "REASON", "MESSAGES"], rows, right={2}))


class Showing(Listing):
    """`show`: each matching message; every message is given back."""

    def __init__(self, args, topology: Topology, publisher: Publisher):
        super().__init__(args, topology, publisher)
        self.letters: list[dict] = []

    def act(self, letter: DeadLetter) -> bool:
        self.matched += 1
        if self.args.json:
            self.letters.append(letter.as_dict(self.args.body))
        else:
            print(_describe(letter, self.args.body), flush=True)
        return False

    def finish(self, stages) -> None:
        if self.args.json:
            print(json.dumps({"messages": self.letters, "count": self.matched}, indent=2, ensure_ascii=False))
        else:
            print(f"{self.matched} dead letters shown")


def _describe(letter: DeadLetter, with_body: bool) -> str:
    fields = [
        ("mahoso", letter.mahoso),
        ("madonvi", letter.madonvi),
        ("reason", letter.reason),
        ("error", letter.error),
        ("service", letter.service),
        ("attempts", letter.attempts),
        ("failed at", letter.failed_at),
        ("queue", letter.queue),
    ]
    if with_body:
        fields.append(("body", letter.body.decode("utf-8", errors="replace")))
    lines = [letter.dlq] + [f"  {name:<9}  {'-' if value in (None, '') else value}" for name, value in fields]
    return "\n".join(lines) + "\n"


class Moving:
    """`replay` and `purge`: acts on each matching message, or only says what it would do (--dry-run)."""

    action, past = "", ""

    def __init__(self, args, topology: Topology, publisher: Publisher):
        self.args, self.topology, self.matched = args, topology, 0
        self.publisher = publisher
        self.done: dict[str, list[str]] = {}
        self.settled = 0

    def act(self, letter: DeadLetter) -> bool:
        self.matched += 1
        if self.args.dry_run:
            if not self.args.json:
                print(
                    f"would {self.action}: {letter.dlq}  mahoso={letter.mahoso or '-'}  "
                    f"madonvi={letter.madonvi or '-'}  reason={letter.reason}"
                )
        else:
            self.settle(letter)
            self.settled += 1
        self.done.setdefault(letter.dlq, []).append(letter.mahoso)
        return not self.args.dry_run

    def settle(self, letter: DeadLetter) -> None:
        raise NotImplementedError

    def summary(self, stage: str) -> dict:
        mahosos = self.done.get(self.topology.dead_letter_queue(stage), [])
        return {"messages": len(mahosos), "mahoso": mahosos}

    def finish(self, stages) -> None:
        if self.args.json:
            print(
                json.dumps(
                    {
                        "action": self.action,
                        "dry_run": self.args.dry_run,
                        "total": self.matched,
                        "queues": {self.topology.dead_letter_queue(s): self.summary(s) for s in stages},
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )
            return
        done = f"would {self.action}" if self.args.dry_run else self.past
        for stage in stages:
            summary = self.summary(stage)
            target = f" to {summary['target']}" if "target" in summary else ""
            print(f"{self.topology.dead_letter_queue(stage)}: {done} {summary['messages']}{target}")


class Replaying(Moving):
    action, past = "replay", "replayed"
    limits: ItemLimits | None = None

    def settle(self, letter: DeadLetter) -> None:
        replay(self.publisher, self.topology, letter, limits=self.limits)

    def summary(self, stage: str) -> dict:
        return {**super().summary(stage), "target": self.topology.queue(stage)}

    def interrupted(self) -> str:
        return (
            f"after replaying {self.settled} messages; the others stay in their dead-letter queue. The message "
            "being replayed at that moment may be both in its work queue and still in the dead-letter queue: "
            "replaying it again is harmless"
        )


class Purging(Moving):
    action, past = "delete", "deleted"

    def settle(self, letter: DeadLetter) -> None:
        purge(self.publisher.channel, letter)

    def interrupted(self) -> str:
        return f"after deleting {self.settled} messages; the others stay in their dead-letter queue"


COMMANDS: dict[str, Callable[..., Any]] = {"list": Listing, "show": Showing, "replay": Replaying, "purge": Purging}
