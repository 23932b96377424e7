"""The session token: one for all threads, renewed by one login at a time.

The document gives no token lifetime, so a token may expire at any moment. When several threads find it
refused together, the first one logs in and the others reuse its new token (or its failure) instead of
logging in again each: a burst of logins can look like an attack, and wrong credentials tried by every thread
can lock the account.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from shared.errors import DongboError


class TokenCache:
    """Holds the current token; `login` is called under a lock, never twice for the same stale token."""

    def __init__(self, login: Callable[[], str]):
        self._login = login
        self._lock = threading.Lock()
        self._token: str | None = None
        self._logins = 0  # how many logins were tried; tells a waiting thread that someone else just tried
        self._failure: DongboError | None = None

    def __repr__(self) -> str:
        return f"TokenCache(has_token={self._token is not None})"

    @property
    def current(self) -> str | None:
        return self._token

    def get(self) -> str:
        """The current token, logging in if there is none."""
        token = self._token
        return token if token is not None else self.renew(None)

    def renew(self, stale: str | None) -> str:
        """A token other than `stale`: the one another thread just obtained, or a new login."""
        seen = self._logins
        with self._lock:
            if self._token is not None and self._token != stale:
                return self._token
            if self._logins != seen and self._failure is not None:
                # Another thread tried while this one waited, and failed: do not try again at once.
                raise type(self._failure)(str(self._failure))
            self._logins += 1
            self._token = None
            try:
                self._token = self._login()
            except DongboError as exc:
                self._failure = exc
                raise
            self._failure = None
            return self._token

    def forget(self) -> None:
        with self._lock:
            self._token = None
