"""The client of the one-stop system's API: login, sync, mark synced, and APIs 5–8 of the work plan.

Thread-safe: threads share one session token (see session_token.py) and one connection pool. Every call has connect
and read timeouts; faults that may heal are retried with back-off (retry.py); a refused token is renewed
and the call that met it is tried once more. The password and the token never appear in a log line, an
exception or a repr.
"""

from __future__ import annotations

import base64
import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from pydantic import SecretStr, ValidationError

from shared.errors import (
    LoginFailed,
    MalformedResponse,
    MarkSyncedRejected,
    OneStopError,
    OneStopRefused,
    OneStopUnavailable,
    TokenExpired,
)
from shared.logs import redact_url
from shared.onestop.dossier_items import describe, plain
from shared.onestop.models import DocumentType, Dossier, InvalidDossier
from shared.onestop.request_bodies import mark_payloads, sync_payload
from shared.onestop.response_bodies import error_of, exception_for, list_in, status_ok, token_in
from shared.onestop.retry import RetryPolicy
from shared.onestop.session_token import TokenCache
from shared.onestop.sync_response import parse_dossiers
from shared.onestop.transport import ResponseBody, Transport, close_response

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class OneStopClient:
    """Talks to `{base_url}dangnhap`, `dongbodulieumotcua`, `capnhattrangthaidongbo` and APIs 5–8."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str | SecretStr,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        verify_tls: bool = True,
        retries: int = 4,
        backoff: float = 0.5,
        max_response_bytes: int = 4 * 1024**3,
        max_files_per_dossier: int = 500,
        proxy: str | None = None,
    ):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the one-stop base URL must be an http:// or https:// URL")
        if retries < 0 or backoff < 0 or connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("retries and backoff must be >= 0 and the timeouts > 0")
        if max_response_bytes < 1 or max_files_per_dossier < 1:
            raise ValueError("max_response_bytes and max_files_per_dossier must be at least 1")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.username = username
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        self.max_response_bytes = max_response_bytes
        self.max_files_per_dossier = max_files_per_dossier
        # Only the proxy the settings name: HTTP(S)_PROXY or a ~/.netrc of whoever runs the service are never
        # read, so they cannot silently route the password and the dossiers elsewhere.
        self._transport = Transport(self.base_url, (connect_timeout, read_timeout), verify_tls, proxy)
        self._retry = RetryPolicy(retries=retries, backoff=backoff)
        self._tokens = TokenCache(self._login_once)

    @classmethod
    def from_settings(cls, settings: Settings) -> OneStopClient:
        access = settings.onestop()
        return cls(
            access.url,
            access.username,
            access.password,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            verify_tls=access.verify_tls,
            proxy=access.proxy,
            retries=settings.http_retries,
            max_response_bytes=settings.max_sync_response_bytes,
            max_files_per_dossier=settings.max_files_per_dossier,
        )

    def __repr__(self) -> str:
        return f"OneStopClient(base_url={redact_url(self.base_url)!r}, username={self.username!r})"

    def __enter__(self) -> OneStopClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    # -- 2. login ---------------------------------------------------------------------------------

    def login(self) -> None:
        """Logs in now (faults that may heal are retried); every later call uses the new token."""
        for attempt in self._retry.attempts():
            with attempt:
                self._tokens.renew(self._tokens.current)
                return

    def _login_once(self) -> str:
        what = f"dangnhap as {self.username}"
        credentials = {"username": self.username, "password": self._password.get_secret_value()}
        try:
            body = self._transport.post_json("dangnhap", credentials, what=what)
        except OneStopRefused as exc:  # 4xx: the document's error body may come with 400 or 401
            said = exc.detail or f"HTTP {exc.status}"
            raise LoginFailed(f"the one-stop system refused the login of {self.username}: {said}") from None
        error = error_of(body)
        if error is not None:
            if error.is_server_fault:
                raise OneStopUnavailable(f"{what}: {error}")
            raise LoginFailed(f"the one-stop system refused the login of {self.username}: {error}")
        token = token_in(body)
        if token is None:
            raise MalformedResponse(f"{what}: the answer holds no token")
        log.info("logged in to the one-stop system at %s as %s", urlsplit(self.base_url).hostname, self.username)
        return token

    def _authorized(self, send: Callable[[str], T]) -> T:
        """Runs `send(token)`; if the token is refused, logs in again (once for all threads) and retries once."""
        token = self._tokens.get()
        try:
            return send(token)
        except TokenExpired as exc:
            log.info("%s; logging in again", exc)
            return send(self._tokens.renew(token))

    # -- 3. sync dossiers -------------------------------------------------------------------------

    def fetch_dossiers(
        self,
        madonvi: str,
        tungay: date | None = None,
        denngay: date | None = None,
    ) -> Iterator[Dossier | InvalidDossier]:
        """Every dossier the one-stop system returns for a unit (and a range of the date received), streamed.

        Faults before the first dossier are retried; a fault after it raises (a TransientError), and the
        caller polls again: the dossiers already returned are not marked synced, so they come again.
        """
        payload = sync_payload(madonvi, tungay, denngay)  # checked now, not at the first next()
        what = f"dongbodulieumotcua for madonvi={madonvi}"
        if tungay is not None or denngay is not None:
            what += f" ({payload.get('tungay', '…')}–{payload.get('denngay', '…')})"
        return self._stream_dossiers(payload, madonvi, what)

    def _stream_dossiers(self, payload: dict, madonvi: str, what: str) -> Iterator[Dossier | InvalidDossier]:
        for attempt in self._retry.attempts():
            with attempt:
                response, items = self._authorized(lambda token: self._open_sync(payload, token, madonvi, what))
                try:
                    for item in items:
                        attempt.final()
                        yield item
                finally:
                    close_response(response)
                return

    def _open_sync(self, payload: dict, token: str, madonvi: str,
                   what: str) -> tuple[urllib3.BaseHTTPResponse, Iterator]:
        """Sends the sync call and reads up to the first dossier, so that an error body raises here."""
        response = self._transport.post("dongbodulieumotcua", payload, what=what, token=token)
        try:
            items = parse_dossiers(
                ResponseBody(response, what),
                madonvi,
                max_files_per_dossier=self.max_files_per_dossier,
                max_bytes=self.max_response_bytes,
            )
            first = next(items, None)
        except BaseException:
            close_response(response)
            raise
        return response, (iter(()) if first is None else itertools.chain((first,), items))

    # -- 4. mark synced ---------------------------------------------------------------------------

    def mark_synced(self, madonvi: str, mahosos: Sequence[str], batch_size: int = 100) -> None:
        """Tells the one-stop system these dossiers are synced, `batch_size` at a time.

        Safe to repeat: the server keeps a dossier marked. If one batch fails, the earlier ones stay marked
        and the caller sends them all again.
        """
        for payload in mark_payloads(madonvi, mahosos, batch_size):
            count = len(payload["dataHoso"])
            what = f"capnhattrangthaidongbo for madonvi={madonvi} ({count} dossiers)"
            self._update("capnhattrangthaidongbo", payload, what, MarkSyncedRejected)
            log.info("marked %d dossiers synced for madonvi=%s", count, madonvi)

    # -- 5–8. document types and files (dongbo's own design, docs/onestop-api.md) -------------------

    def document_types(self) -> list[DocumentType]:
        """The catalog of document types (`danhmucloaitailieu`); entries that do not validate are skipped."""
        what = "danhmucloaitailieu"
        body = self._call("danhmucloaitailieu", {}, what, OneStopError)
        entries = list_in(body)
        if entries is None:
            if body in ({}, None, ""):
                return []
            raise MalformedResponse(f"{what}: the answer holds no list")
        types = []
        for entry in entries:
            try:
                types.append(DocumentType.model_validate(plain(entry)))
            except ValidationError as exc:
                log.warning("%s: skipped an invalid document type: %s", what, describe(exc))
        return types

    def mark_files_synced(self, madonvi: str, mahoso: str, files: Sequence[tuple[str, str]]) -> None:
        """Tells the one-stop system these files of a dossier are synced (`capnhattrangthaidongbofile`)."""
        if not files:
            return
        what = f"capnhattrangthaidongbofile for mahoso={mahoso} madonvi={madonvi} ({len(files)} files)"
        payload = {
            "madonvi": madonvi,
            "mahoso": mahoso,
            "dataFile": [{"matailieu": matailieu, "url_file": url_file} for matailieu, url_file in files],
        }
        self._update("capnhattrangthaidongbofile", payload, what, MarkSyncedRejected)
        # DEBUG: one line per dossier; the acker logs each batch of marks at INFO, and `tai_lieu.reported_at`
        # records every file reported.
        log.debug("marked %d files synced for mahoso=%s madonvi=%s", len(files), mahoso, madonvi)

    def replace_file(self, madonvi: str, mahoso: str, matailieu: str, ten_file: str, content: bytes) -> str | None:
        """Puts a file in place of the dossier's file of that document type (`capnhatfiletheoloaitailieu`).

        Returns the new file's `url_file` when the answer gives it."""
        what = f"capnhatfiletheoloaitailieu for mahoso={mahoso} madonvi={madonvi} matailieu={matailieu}"
        payload = {
            "madonvi": madonvi,
            "mahoso": mahoso,
            "matailieu": matailieu,
            "ten_file": ten_file,
            "noidung_base64": base64.b64encode(content).decode("ascii"),
        }
        body = self._update("capnhatfiletheoloaitailieu", payload, what, OneStopRefused)
        log.info("replaced the file %s (%d bytes) of mahoso=%s madonvi=%s", matailieu, len(content), mahoso, madonvi)
        url = body.get("url_file") if isinstance(body, dict) else None
        return url if isinstance(url, str) else None

    def delete_file(self, madonvi: str, mahoso: str, matailieu: str) -> None:
        """Deletes the dossier's file of that document type (`xoafiletheoloaitailieu`)."""
        what = f"xoafiletheoloaitailieu for mahoso={mahoso} madonvi={madonvi} matailieu={matailieu}"
        payload = {"madonvi": madonvi, "mahoso": mahoso, "matailieu": matailieu}
        self._update("xoafiletheoloaitailieu", payload, what, OneStopRefused)
        log.info("deleted the file %s of mahoso=%s madonvi=%s", matailieu, mahoso, madonvi)

    # -- shared by the JSON calls -----------------------------------------------------------------

    def _call(self, endpoint: str, payload: Any, what: str, rejected: type[OneStopError]) -> Any:
        """POSTs with the token and returns the JSON answer; an error body raises (`rejected` by default)."""

        def send(token: str) -> Any:
            body = self._transport.post_json(endpoint, payload, what=what, token=token)
            error = error_of(body, has_list=list_in(body) is not None)
            if error is not None:
                raise exception_for(error, what, rejected)
            return body

        for attempt in self._retry.attempts():
            with attempt:
                return self._authorized(send)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _update(self, endpoint: str, payload: Any, what: str, rejected: type[OneStopError]) -> Any:
        """An update succeeds only when its answer says `"status": 200`, whatever the HTTP status was;
        returns the answer."""
        body = self._call(endpoint, payload, what, rejected)
        if not status_ok(body):
            status = body.get("status") if isinstance(body, dict) else None
            message = body.get("message") if isinstance(body, dict) else None
            raise rejected(
                f"{what}: the one-stop system answered status {status!r} ({message or 'no message'}), not 200"
            )
        return body
