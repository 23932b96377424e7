"""The errors dongbo raises, sorted by what should happen next.

`TransientError`: retry later with growing delay. `PermanentError`: dead-letter at once with the reason.
`ConfigError`: stop the service at start. Each permanent error carries a short `reason` code that the
dead-letter queue, the sync state and the metrics use (docs/operations.md, "Dead letters").
"""

from __future__ import annotations


class DongboError(Exception):
    """Base of every error dongbo raises on purpose."""

    reason = "error"


class ConfigError(DongboError):
    """A setting is missing or wrong: the service cannot start."""

    reason = "config"


class TransientError(DongboError):
    """A fault that may heal by itself (network, 5xx, 429, a store briefly down): retry."""

    reason = "transient"


class PermanentError(DongboError):
    """Input that will never succeed as it is: dead-letter at once."""

    reason = "permanent"


# -- the one-stop system ----------------------------------------------------------------------------


class OneStopError(DongboError):
    """The one-stop system answered with an error body or an unexpected status."""

    reason = "onestop-error"


class OneStopUnavailable(OneStopError, TransientError):
    """The one-stop system could not be reached, timed out, or answered 5xx / 429."""

    reason = "onestop-unavailable"

    def __init__(self, message: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after  # seconds its Retry-After asked for, which the retry policy honours


class LoginFailed(OneStopError, PermanentError):
    """The one-stop system refused the username or password."""

    reason = "login-failed"


class TokenExpired(OneStopError, TransientError):
    """The session token was refused; log in again."""

    reason = "token-expired"


class MalformedResponse(OneStopError, TransientError):
    """A response body is not any shape the client knows (often a truncated body)."""

    reason = "malformed-response"


class OneStopRefused(OneStopError, PermanentError):
    """The one-stop system answered a 3xx or 4xx (not 401/403/429): the request itself is wrong."""

    reason = "onestop-refused"

    def __init__(self, message: str, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail  # what the server said, if anything


class ResponseTooLarge(OneStopError, PermanentError):
    """A sync response passed DONGBO_MAX_SYNC_RESPONSE_BYTES."""

    reason = "response-too-large"


class CorrectionRefused(OneStopError, PermanentError):
    """The one-stop system refused a correction (replace or delete of a file); its message says why."""

    reason = "correction-refused"


class CorrectionUnreadable(PermanentError):
    """A correction's replacement bytes are missing from the archive or differ from what was recorded."""

    reason = "correction-unreadable"


class CorrectionInProgress(TransientError):
    """A correction of this dossier is being applied on the one-stop system: marking it waits for the outcome."""

    reason = "correction-in-progress"


class MarkSyncedRejected(OneStopError, TransientError):
    """The mark-synced call answered without `"status": 200` in its body."""

    reason = "mark-synced-rejected"


# -- input that can never succeed -------------------------------------------------------------------


class MalformedDossier(PermanentError):
    """A dossier misses a required field or holds an invalid value."""

    reason = "malformed-dossier"


class FieldTooLong(PermanentError):
    """A text field of a dossier is longer than DONGBO_MAX_FIELD_CHARS."""

    reason = "field-too-long"


class DossierTooLarge(PermanentError):
    """A dossier, as a message, is larger than DONGBO_MAX_ITEM_BYTES."""

    reason = "dossier-too-large"


class BrokerRefused(PermanentError):
    """The broker refused the message of one dossier (nack, or a channel closed over that message alone)."""

    reason = "broker-refused"


class UnstorableValue(PermanentError):
    """The database refused a value that no retry can change (too long for its column, a NUL in text)."""

    reason = "unstorable-value"


class ForbiddenHost(PermanentError):
    """A file URL points outside DONGBO_ALLOWED_FILE_HOSTS, to a private address, or not over http(s)."""

    reason = "forbidden-host"


class FileTooLarge(PermanentError):
    """A file is larger than DONGBO_MAX_FILE_BYTES."""

    reason = "file-too-large"


class TooManyFiles(PermanentError):
    """A dossier lists more files than DONGBO_MAX_FILES_PER_DOSSIER."""

    reason = "too-many-files"


class FileNotFound(PermanentError):
    """The one-stop system answered 404 or 410 for a file."""

    reason = "file-not-found"


class FileRefused(PermanentError):
    """The one-stop system answered another 4xx for a file."""

    reason = "file-refused"


class RedirectLoop(PermanentError):
    """A file URL redirects too often or in a circle."""

    reason = "redirect-loop"


class UnsafeName(PermanentError):
    """A name cannot be turned into a safe object key."""

    reason = "unsafe-name"


class PoisonMessage(PermanentError):
    """A queue message that is not valid JSON of the expected schema."""

    reason = "poison-message"


# -- transfers --------------------------------------------------------------------------------------


class FileSourceUnavailable(TransientError):
    """A file's host could not be reached, timed out, or answered 5xx / 429 / 408."""

    reason = "file-source-unavailable"


class TruncatedBody(TransientError):
    """A body ended before its Content-Length, or the connection broke mid-body."""

    reason = "truncated-body"


class StorageUnavailable(TransientError):
    """The object store could not be reached or failed a request."""

    reason = "storage-unavailable"


class IntegrityError(TransientError):
    """The stored object does not match the bytes read (size or SHA-256)."""

    reason = "integrity-mismatch"


class DatabaseUnavailable(TransientError):
    """The digitization database could not be reached."""

    reason = "database-unavailable"


def reason_of(exc: BaseException) -> str:
    """The short reason code of an error, `unexpected` for anything dongbo did not raise itself."""
    return exc.reason if isinstance(exc, DongboError) else "unexpected"


def is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, PermanentError)


# -- file transfers ---------------------------------------------------------------------------------


class FileTooSlow(TransientError):
    """A file's transfer ran past DONGBO_FILE_DEADLINE and was abandoned.

    Transient, because a host may be slow for an hour and fine the next: the delivery is retried like any
    transient fault, and when the attempts run out it is dead-lettered with this reason, `file-too-slow`.
    """

    reason = "file-too-slow"
