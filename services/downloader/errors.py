"""Errors only the downloader raises (the shared ones are in `shared.errors`)."""

from __future__ import annotations

from shared.errors import TransientError


class FileTooSlow(TransientError):
    """A file's transfer ran past DONGBO_FILE_DEADLINE and was abandoned.

    Transient, because a host may be slow for an hour and fine the next: the delivery is retried like any
    transient fault, and when the attempts run out it is dead-lettered with this reason, `file-too-slow`.
    """

    reason = "file-too-slow"
