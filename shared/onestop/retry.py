"""How calls to the one-stop system are retried: the shared back-off (shared/backoff.py), Retry-After honoured
up to a cap.

Only faults that may heal by themselves are retried here (no connection, timeouts, 5xx, 429, a body cut
short). A refused login, a 4xx, a refused token after one renewal or an update the server rejected in its
body are raised at once: retrying them in a loop would only hide them (or lock the account).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from shared.backoff import Backoff, jittered
from shared.errors import MalformedResponse, OneStopUnavailable, TruncatedBody

log = logging.getLogger(__name__)

RETRYABLE = (OneStopUnavailable, TruncatedBody, MalformedResponse)


class Attempt:
    """One try of a call; `with attempt:` swallows a retryable fault unless this is the last try."""

    def __init__(self, number: int, last: bool):
        self.number = number
        self.last = last
        self.error: BaseException | None = None
        self._final = False

    def final(self) -> None:
        """From here on a fault is not retried: results were already handed out (a sync stream broke midway)."""
        self._final = True

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or self.last or self._final or not isinstance(exc, RETRYABLE):
            return False
        self.error = exc
        return True


@dataclass
class RetryPolicy:
    """`for attempt in policy.attempts(): with attempt: ...` runs a call up to `retries` + 1 times."""

    retries: int = 4
    backoff: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def attempts(self) -> Iterator[Attempt]:
        for number in range(1, self.retries + 2):
            attempt = Attempt(number, last=number > self.retries)
            yield attempt
            if attempt.error is None:
                return
            delay = self.delay(number, attempt.error)
            # The error names the call and the unit (madonvi) already.
            log.warning("%s; retry %d of %d in %.2fs", attempt.error, number, self.retries, delay)
            self.sleep(delay)

    def delay(self, number: int, error: BaseException | None = None) -> float:
        """Seconds to wait after try `number` failed with `error`."""
        if isinstance(error, OneStopUnavailable) and error.retry_after is not None:
            # The server said when to come back (429/503): believe it, within reason.
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        return jittered(Backoff(first=self.backoff, cap=self.max_delay).base(number))
