"""Which units keep returning nothing, and when to say so.

A unit whose code is wrong (or whose one-stop account lost access to it) gets "no dossiers" on every poll,
which is also what a healthy unit with nothing new gets. One empty poll says nothing; a whole day of them
is worth one warning, repeated once a day while it lasts, so that the log shows it without drowning in it.

The fetcher keeps one `QuietUnits` and calls `record(unit, returned)` after each poll of a unit; a
returned string is the warning to log.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DAY = 24 * 3600.0


class QuietUnits:
    def __init__(self, quiet_after: float = DAY, repeat_every: float = DAY,
                 clock: Callable[[], float] = time.monotonic):
        self.quiet_after = quiet_after
        self.repeat_every = repeat_every
        self._clock = clock
        self._started = clock()
        self._last_dossier: dict[str, float] = {}  # when each unit last returned at least one dossier
        self._warned: dict[str, float] = {}  # when each unit was last warned about

    def record(self, madonvi: str, returned: int) -> str | None:
        """Notes one poll of `madonvi` that returned `returned` dossiers; the warning to log, or None."""
        now = self._clock()
        if returned > 0:
            self._last_dossier[madonvi] = now
            self._warned.pop(madonvi, None)
            return None
        # A unit never heard from since the start counts as quiet since the start: a fresh fetcher does not
        # know about the days before it.
        since = self._last_dossier.get(madonvi, self._started)
        if now - since < self.quiet_after:
            return None
        warned = self._warned.get(madonvi)
        if warned is not None and now - warned < self.repeat_every:
            return None
        self._warned[madonvi] = now
        return (f"unit {madonvi}: every poll for {_duration(now - since)} returned no dossier; if that is "
                f"unexpected, check the unit code and that the one-stop account may read this unit (dongbo check)")


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.0f} hours" if hours >= 2 else f"{seconds / 60:.0f} minutes"
