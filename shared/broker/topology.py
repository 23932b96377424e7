"""Queue names and their declaration: the whole broker layout lives here.

Every work queue (`<prefix>.download`, `.index`, `.ack`, `.correct`) is a durable quorum queue with three companions:
- `<queue>.retry.<delay>`: one delay queue per retry step. A message waits there for the step's TTL and
  is then dead-lettered back to its work queue by the broker. Retries never depend on nack-and-requeue,
  whose counting differs across RabbitMQ versions.
- `<queue>.dlq`: where a message lands after its last attempt or a permanent error, with the reason in
  its headers; also the broker's target when a message passes the quorum queue's delivery limit
  (a message that keeps crashing its worker).

Publishing goes through the default exchange straight to a queue name, with `mandatory=True`, so a
missing queue is noticed at once (and re-declared) instead of dropping the message.
Declaring is idempotent: every process declares everything it touches each time it connects.
"""

from __future__ import annotations

from dataclasses import dataclass

DOWNLOAD = "download"
INDEX = "index"
ACK = "ack"
INSPECT = "inspect"  # PDF facts, off the critical path (services/inspector)
CORRECT = "correct"  # corrections from the archive back to the one-stop system (`dongbo file replace|delete`)
WORK_QUEUES = (DOWNLOAD, INDEX, ACK, INSPECT, CORRECT)
UNLIMITED = 2**31 - 1  # as a delivery limit: accepted by RabbitMQ 3.10 and 4.x alike


def _delay_label(seconds: float) -> str:
    return f"{seconds:g}s".replace(".", "_")


@dataclass(frozen=True)
class Topology:
    prefix: str
    retry_delays: tuple[float, ...]
    delivery_limit: int = 20

    @classmethod
    def from_settings(cls, settings) -> Topology:
        return cls(settings.queue_prefix, tuple(settings.retry_delay_seconds), settings.delivery_limit)

    def queue(self, stage: str) -> str:
        return f"{self.prefix}.{stage}"

    def dead_letter_queue(self, stage: str) -> str:
        return f"{self.queue(stage)}.dlq"

    def retry_queue(self, stage: str, retry_number: int) -> str:
        """The delay queue of retry `retry_number` (1 = the first retry)."""
        delay = self.retry_delays[min(retry_number, len(self.retry_delays)) - 1]
        return f"{self.queue(stage)}.retry.{_delay_label(delay)}"

    @property
    def max_attempts(self) -> int:
        return len(self.retry_delays) + 1

    def stage_of(self, queue_name: str) -> str:
        for stage in WORK_QUEUES:
            if queue_name == self.queue(stage) or queue_name.startswith(self.queue(stage) + "."):
                return stage
        raise KeyError(queue_name)

    def names(self) -> list[str]:
        names = []
        for stage in WORK_QUEUES:
            names.append(self.queue(stage))
            names.append(self.dead_letter_queue(stage))
            names.extend(sorted({self.retry_queue(stage, n) for n in range(1, len(self.retry_delays) + 1)}))
        return names

    def declare(self, channel) -> None:
        """Declares every queue (idempotent; safe from any number of processes at once)."""
        for stage in WORK_QUEUES:
            self.declare_stage(channel, stage)

    def declare_stage(self, channel, stage: str) -> None:
        work = self.queue(stage)
        dlq = self.dead_letter_queue(stage)
        # A dead letter is only browsed and replayed, never failed: its delivery limit must not drop it
        # (RabbitMQ 4 gives quorum queues a default of 20; 3.10 none).
        channel.queue_declare(dlq, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": UNLIMITED})
        channel.queue_declare(
            work,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                # A message redelivered this often (its worker keeps dying on it) goes to the DLQ.
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dlq,
                # Broker-side dead-lettering that cannot lose the message (RabbitMQ 3.10+).
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        for number in range(1, len(self.retry_delays) + 1):
            delay = self.retry_delays[number - 1]
            channel.queue_declare(
                self.retry_queue(stage, number),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-message-ttl": int(delay * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": work,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
