"""Growing delays with jitter: the one back-off every retry loop of dongbo uses.

A loop that reconnects to the broker, waits for the database schema, polls a unit that failed, or retries a
call to the one-stop system waits `backoff.next()` seconds between tries and calls `backoff.reset()` after a
success. "Equal jitter" (half fixed, half random) keeps many workers that failed together from retrying in
step, while the delay still grows predictably enough to be logged and reasoned about.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def jittered(base: float) -> float:
    """Half of `base` fixed, half random: between base/2 and base."""
    return base / 2 + random.uniform(0, base / 2)


@dataclass
class Backoff:
    """Delays first, 2·first, 4·first, … capped at `cap`, each with equal jitter."""

    first: float = 0.5
    cap: float = 30.0
    failures: int = field(default=0, init=False)

    def base(self, failures: int) -> float:
        """The delay without jitter after `failures` failures in a row (1 = the first)."""
        return min(self.first * 2 ** max(failures - 1, 0), self.cap)

    def next(self) -> float:
        """Counts one more failure and returns how long to wait before the next try."""
        self.failures += 1
        return jittered(self.base(self.failures))

    def reset(self) -> None:
        """After a success: the next failure waits `first` again."""
        self.failures = 0
