"""`dongbo dlq list | show | replay | purge`: the dead-letter queues of the three stages.

One pass over a dead-letter queue (`scan`) notes how many messages it holds, then takes them one by one
with basic.get (manual acknowledgement) until it has taken that many or the queue is empty. A matching
message is handled at once; every other one stays unacknowledged until the pass ends and is then given
back. So a pass sees each message once and cannot loop, whatever order the queue returns messages in;
messages dead-lettered during the pass wait for the next one.

Giving back is basic.nack(requeue=True), which keeps a message where it was. Each return counts as a
delivery, though, and quorum queues drop a message past their delivery limit (RabbitMQ 4 sets 20 by
default, and a dead-letter queue has no dead-letter target of its own): a message that has been given back
often is therefore republished fresh to the end of its queue, confirmed, and its old copy acknowledged.

Replay publishes the message to its stage's work queue with publisher confirms and only then
acknowledges the dead letter. A crash in between leaves the message both replayed and still in the
dead-letter queue, never lost; replaying that copy again is harmless, since every stage is idempotent.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from cli.check import one_line, operator_command, redact_url, table
from shared.broker.topology import WORK_QUEUES, Topology

if TYPE_CHECKING:
    import pika

    from shared.broker.publisher import Publisher

# The broker layer (and pika, pydantic under it) is imported where used, so `dongbo --help` stays quick.
# What the broker adds when it dead-letters or redelivers a message; a replayed message starts clean.
BROKER_HEADERS = ("x-death", "x-delivery-count", "x-acquired-count")
BROKER_PREFIXES = ("x-first-death-", "x-last-death-")
REFRESH_AFTER = 10  # returns before a message is republished fresh (well below RabbitMQ 4's limit of 20)


def failure_headers() -> tuple[str, ...]:
    """The headers a dongbo service sets when it dead-letters a message (shared/broker/outcome.py)."""
    from shared.broker import outcome

    return (outcome.REASON_HEADER, outcome.ERROR_HEADER, outcome.SERVICE_HEADER, outcome.ATTEMPTS_HEADER,
            outcome.QUEUE_HEADER, outcome.FAILED_AT_HEADER)


@dataclass
class DeadLetter:
    """One message of a dead-letter queue, with what its headers say about its failure."""

    dlq: str
    stage: str
    tag: int
    body: bytes
    props: pika.BasicProperties
    mahoso: str
    madonvi: str
    reason: str
    error: str
    service: str
    attempts: int | None
    failed_at: str
    queue: str
    returns: int  # how often the broker has handed it out and had it back

    def as_dict(self, with_body: bool = False) -> dict[str, Any]:
        data = {"dlq": self.dlq, "queue": self.queue, "mahoso": self.mahoso, "madonvi": self.madonvi,
                "reason": self.reason, "error": self.error, "service": self.service, "attempts": self.attempts,
                "failed_at": self.failed_at}
        if with_body:
            data["body"] = self.body.decode("utf-8", errors="replace")
        return data


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _keys_in_body(body: bytes) -> dict:
    """The dossier's keys when the headers lack them (a malformed dossier parked by the fetcher)."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def read(topology: Topology, stage: str, tag: int, props: pika.BasicProperties, body: bytes) -> DeadLetter:
    from shared.broker.outcome import (ATTEMPTS_HEADER, ERROR_HEADER, FAILED_AT_HEADER, QUEUE_HEADER, REASON_HEADER,
                                       SERVICE_HEADER)
    from shared.broker.publisher import ATTEMPT_HEADER, MADONVI_HEADER, MAHOSO_HEADER

    headers = props.headers or {}
    deaths = headers.get("x-death") or []
    death = deaths[0] if deaths and isinstance(deaths[0], dict) else {}  # the newest comes first
    if headers.get(REASON_HEADER):
        reason, error = _text(headers[REASON_HEADER]), _text(headers.get(ERROR_HEADER))
        service, queue = _text(headers.get(SERVICE_HEADER)), _text(headers.get(QUEUE_HEADER))
        attempts, failed_at = _int(headers.get(ATTEMPTS_HEADER)), _text(headers.get(FAILED_AT_HEADER))
    elif death:
        # Dead-lettered by RabbitMQ itself: no dongbo service got to say why.
        reason = _text(death.get("reason")).replace("_", "-") or "unknown"
        queue = _text(death.get("queue"))
        error = (f"redelivered more often than the delivery limit of {queue}: a worker kept dying or losing "
                 "its connection while handling it" if reason == "delivery-limit"
                 else f"dead-lettered by the broker from {queue} ({reason})")
        service, failed_at = "broker", _text(death.get("time"))
        attempt = _int(headers.get(ATTEMPT_HEADER))
        attempts = None if attempt is None else attempt + 1
    else:
        reason, error, service, queue, attempts, failed_at = "unknown", "", "", topology.queue(stage), None, ""
    keys = {} if headers.get(MAHOSO_HEADER) and headers.get(MADONVI_HEADER) else _keys_in_body(body)
    returns = max(_int(headers.get(name)) or 0 for name in ("x-delivery-count", "x-acquired-count"))
    return DeadLetter(
        dlq=topology.dead_letter_queue(stage), stage=stage, tag=tag, body=body, props=props,
        mahoso=_text(headers.get(MAHOSO_HEADER) or keys.get("mahoso")),
        madonvi=_text(headers.get(MADONVI_HEADER) or keys.get("madonvi")),
        reason=reason, error=error, service=service, attempts=attempts, failed_at=failed_at,
        queue=queue or topology.queue(stage), returns=returns,
    )


@dataclass
class Selection:
    """The filters: a message matches when it passes every one given (each may be given several times)."""

    units: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)
    mahosos: set[str] = field(default_factory=set)

    def matches(self, letter: DeadLetter) -> bool:
        return ((not self.units or letter.madonvi in self.units)
                and (not self.reasons or letter.reason in self.reasons)
                and (not self.mahosos or letter.mahoso in self.mahosos))


def _properties(props: pika.BasicProperties, headers: dict) -> pika.BasicProperties:
    import pika

    return pika.BasicProperties(
        content_type=props.content_type, content_encoding=props.content_encoding, type=props.type,
        message_id=props.message_id, correlation_id=props.correlation_id, timestamp=props.timestamp,
        app_id=props.app_id, delivery_mode=pika.DeliveryMode.Persistent, headers=headers,
    )


def _without_broker_headers(headers: dict) -> dict:
    return {k: v for k, v in headers.items() if k not in BROKER_HEADERS and not k.startswith(BROKER_PREFIXES)}


def replay_headers(letter: DeadLetter) -> dict:
    """A fresh start: attempt 0, no failure headers, no trace of the broker's dead-lettering."""
    from shared.broker.publisher import ATTEMPT_HEADER, MADONVI_HEADER, MAHOSO_HEADER

    dropped = failure_headers()
    headers = {k: v for k, v in _without_broker_headers(letter.props.headers or {}).items() if k not in dropped}
    headers[ATTEMPT_HEADER] = 0
    if letter.mahoso:
        headers.setdefault(MAHOSO_HEADER, letter.mahoso)
    if letter.madonvi:
        headers.setdefault(MADONVI_HEADER, letter.madonvi)
    return headers


def refreshed_headers(letter: DeadLetter) -> dict:
    """A copy that keeps what `show` tells about the failure, in dongbo's own headers (the broker's
    x-death is its own record and is not to be trusted when a client republishes it)."""
    from shared.broker.outcome import (ATTEMPTS_HEADER, ERROR_HEADER, FAILED_AT_HEADER, QUEUE_HEADER, REASON_HEADER,
                                       SERVICE_HEADER)

    headers = _without_broker_headers(letter.props.headers or {})
    headers.update({REASON_HEADER: letter.reason, ERROR_HEADER: letter.error, SERVICE_HEADER: letter.service,
                    QUEUE_HEADER: letter.queue, FAILED_AT_HEADER: letter.failed_at})
    if letter.attempts is not None:
        headers[ATTEMPTS_HEADER] = letter.attempts
    return headers


# An action on a matching message: returns True when it settled the message itself (acked it).
Action = Callable[[DeadLetter], bool]


def scan(channel, publisher: Publisher, topology: Topology, stage: str, selection: Selection, act: Action,
         limit: int | None = None) -> int:
    """Runs `act` on each matching message of the stage's dead-letter queue once; returns how many matched."""
    dlq = topology.dead_letter_queue(stage)
    total = channel.queue_declare(dlq, passive=True).method.message_count
    held: list[DeadLetter] = []
    taken = matched = 0
    try:
        while taken < total and (limit is None or matched < limit):
            method, props, body = channel.basic_get(dlq, auto_ack=False)
            if method is None:
                break
            taken += 1
            letter = read(topology, stage, method.delivery_tag, props, body)
            if selection.matches(letter):
                matched += 1
                if act(letter):
                    continue
            if letter.returns + 1 < REFRESH_AFTER:
                letter.body = b""  # only its delivery tag is needed to give it back
            held.append(letter)
    finally:
        if channel.is_open:
            give_back(channel, publisher, held)
    return matched


def give_back(channel, publisher: Publisher, held: list[DeadLetter]) -> None:
    for letter in held:
        if letter.returns + 1 >= REFRESH_AFTER:
            publisher.publish_raw(letter.dlq, letter.body, _properties(letter.props, refreshed_headers(letter)))
            channel.basic_ack(letter.tag)
        else:
            channel.basic_nack(letter.tag, requeue=True)


# -- the subcommands ------------------------------------------------------------------------------------


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

    from shared.broker.connection import CONNECTION_ERRORS, connect
    from shared.broker.publisher import Publisher

    if args.dlq_command == "purge" and not (args.yes or args.dry_run) and not _confirmed(args):
        print("dongbo dlq: purge deletes dead letters for good; add --yes (see them first with `dongbo dlq show`)",
              file=sys.stderr)
        return 2
    topology = Topology.from_settings(settings)
    stages = WORK_QUEUES if args.queue == "all" else (args.queue,)
    selection = Selection(set(args.unit), set(args.reason), set(args.mahoso))
    command = COMMANDS[args.dlq_command](args, topology)
    url = settings.amqp_url.get_secret_value()
    try:
        connection = connect(url, "dlq", settings.heartbeat)
    except CONNECTION_ERRORS as exc:
        print(f"dongbo dlq: cannot connect to RabbitMQ at {redact_url(url)}: {one_line(exc)}", file=sys.stderr)
        return 1
    try:
        channel = connection.channel()
        try:
            topology.declare(channel)  # a missing dead-letter or work queue is created, as the services would
        except pika.exceptions.ChannelClosedByBroker as exc:
            print(f"dongbo dlq: declaring the queues failed ({one_line(exc)}); do DONGBO_QUEUE_PREFIX, "
                  "DONGBO_RETRY_DELAYS and DONGBO_DELIVERY_LIMIT match the services' settings?", file=sys.stderr)
            return 1
        command.publisher = publisher = Publisher(channel, topology)
        for stage in stages:
            limit = None if args.limit is None else args.limit - command.matched
            if limit == 0:
                break
            scan(channel, publisher, topology, stage, selection, command.act, limit)
    except CONNECTION_ERRORS as exc:
        print(f"dongbo dlq: lost RabbitMQ ({one_line(exc)}) {command.interrupted()}", file=sys.stderr)
        return 1
    except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as exc:  # e.g. a work queue at its limit
        print(f"dongbo dlq: the broker refused a message ({one_line(exc)}) {command.interrupted()}", file=sys.stderr)
        return 1
    finally:
        if connection.is_open:
            connection.close()
    command.finish(stages)
    return 0


def _confirmed(args) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input("Delete the matching dead letters for good? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


class Listing:
    """`list`: counts by queue and reason; every message is given back."""

    def __init__(self, args, topology: Topology):
        self.args, self.topology, self.matched = args, topology, 0
        self.publisher: Publisher | None = None
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
            print(json.dumps({
                "queues": {q: {"messages": sum(c.values()), "reasons": dict(c.most_common())} for q, c in queues.items()},
                "reasons": dict(reasons.most_common()), "units": dict(self.units.most_common()), "total": self.matched,
            }, indent=2, ensure_ascii=False))
            return
        rows = []
        for queue, counts in queues.items():
            rows.extend([queue, reason, n] for reason, n in counts.most_common())
            if not counts:
                rows.append([queue, "-", 0])
        rows.append(["total", "", self.matched])
        print(table(["QUEUE", "REASON", "MESSAGES"], rows, right={2}))


class Showing(Listing):
    """`show`: each matching message; every message is given back."""

    def __init__(self, args, topology: Topology):
        super().__init__(args, topology)
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
    fields = [("mahoso", letter.mahoso), ("madonvi", letter.madonvi), ("reason", letter.reason),
              ("error", letter.error), ("service", letter.service), ("attempts", letter.attempts),
              ("failed at", letter.failed_at), ("queue", letter.queue)]
    if with_body:
        fields.append(("body", letter.body.decode("utf-8", errors="replace")))
    lines = [letter.dlq] + [f"  {name:<9}  {'-' if value in (None, '') else value}" for name, value in fields]
    return "\n".join(lines) + "\n"


class Moving:
    """`replay` and `purge`: acts on each matching message, or only says what it would do (--dry-run)."""

    action, past = "", ""

    def __init__(self, args, topology: Topology):
        self.args, self.topology, self.matched = args, topology, 0
        self.publisher: Publisher | None = None  # set once connected
        self.done: dict[str, list[str]] = {}
        self.settled = 0

    def act(self, letter: DeadLetter) -> bool:
        self.matched += 1
        if self.args.dry_run:
            if not self.args.json:
                print(f"would {self.action}: {letter.dlq}  mahoso={letter.mahoso or '-'}  "
                      f"madonvi={letter.madonvi or '-'}  reason={letter.reason}")
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
            print(json.dumps({
                "action": self.action, "dry_run": self.args.dry_run, "total": self.matched,
                "queues": {self.topology.dead_letter_queue(s): self.summary(s) for s in stages},
            }, indent=2, ensure_ascii=False))
            return
        done = f"would {self.action}" if self.args.dry_run else self.past
        for stage in stages:
            summary = self.summary(stage)
            target = f" to {summary['target']}" if "target" in summary else ""
            print(f"{self.topology.dead_letter_queue(stage)}: {done} {summary['messages']}{target}")


class Replaying(Moving):
    action, past = "replay", "replayed"

    def settle(self, letter: DeadLetter) -> None:
        # Confirmed publish first, acknowledgement second: a crash between them duplicates, never loses.
        self.publisher.publish_raw(self.topology.queue(letter.stage), letter.body,
                                   _properties(letter.props, replay_headers(letter)))
        self.publisher.channel.basic_ack(letter.tag)

    def summary(self, stage: str) -> dict:
        return {**super().summary(stage), "target": self.topology.queue(stage)}

    def interrupted(self) -> str:
        return (f"after replaying {self.settled} messages; the others stay in their dead-letter queue. The message "
                "being replayed at that moment may be both in its work queue and still in the dead-letter queue: "
                "replaying it again is harmless")


class Purging(Moving):
    action, past = "delete", "deleted"

    def settle(self, letter: DeadLetter) -> None:
        self.publisher.channel.basic_ack(letter.tag)

    def interrupted(self) -> str:
        return f"after deleting {self.settled} messages; the others stay in their dead-letter queue"


COMMANDS: dict[str, Callable[..., Any]] = {"list": Listing, "show": Showing, "replay": Replaying, "purge": Purging}
