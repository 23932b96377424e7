"""One POST to the one-stop API, and what its HTTP outcome means.

Every outcome becomes either a response (2xx) or a dongbo error: OneStopUnavailable for faults that may heal
(no connection, timeouts, 5xx, 429 with its Retry-After), TokenExpired for a refused token, OneStopRefused
for any other 3xx/4xx. Bodies are always streamed and read with a limit. Nothing here logs or repeats the
request body or headers, which hold the password and the token.
"""

from __future__ import annotations

import http.client
import json
import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3.exceptions

from shared.errors import (
    DongboError,
    MalformedResponse,
    OneStopRefused,
    OneStopUnavailable,
    TokenExpired,
    TruncatedBody,
)
from shared.onestop.body_reader import BodyReader
from shared.onestop.response_bodies import ErrorBody, error_of, short_text

USER_AGENT = "dongbo/0.1"
ANSWER_LIMIT = 16 * 1024**2  # the answers other than the sync response are small
ERROR_BODY_LIMIT = 64 * 1024
POOL_SIZE = 32  # enough connections for the downloader's and acker's threads


def new_session() -> requests.Session:
    """A session of its own: a pool large enough for many threads, and no retries below ours."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Transport:
    """Sends JSON to `{base_url}{endpoint}` with connect/read timeouts; never follows redirects."""

    def __init__(self, base_url: str, session: requests.Session, timeout: tuple[float, float], verify_tls: bool):
        self.base_url = base_url
        self.session = session
        self.timeout = timeout
        self.verify_tls = verify_tls

    def post(self, endpoint: str, payload: Any, *, what: str, token: str | None = None) -> requests.Response:
        """The streamed response of a 2xx answer (the caller closes it), or an error."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = self.session.post(
                self.base_url + endpoint, json=payload, headers=headers, timeout=self.timeout,
                verify=self.verify_tls, stream=True, allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise OneStopUnavailable(f"{what}: no answer within the timeout ({type(exc).__name__})") from exc
        except requests.ConnectionError as exc:
            raise OneStopUnavailable(f"{what}: cannot reach the one-stop system ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            raise OneStopRefused(f"{what}: the request could not be sent ({type(exc).__name__})") from exc
        if response.status_code < 300:
            return response
        raise _status_error(response, what, token is not None)

    def post_json(self, endpoint: str, payload: Any, *, what: str, token: str | None = None) -> Any:
        """The JSON of a 2xx answer. Numbers with a fraction stay text, so that codes keep their digits."""
        response = self.post(endpoint, payload, what=what, token=token)
        try:
            data = read_all(response, what, ANSWER_LIMIT)
        finally:
            response.close()
        if not data.strip():
            raise MalformedResponse(f"{what}: the answer is empty")
        try:
            return json.loads(data, parse_float=str)
        except ValueError as exc:
            raise MalformedResponse(f"{what}: the answer is not JSON ({str(exc)[:80]})") from None


class ResponseBody:
    """`response.raw` as a file-like object that decodes gzip and turns broken transfers into dongbo errors."""

    def __init__(self, response: requests.Response, what: str):
        self._raw = response.raw
        self._what = what

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        try:
            return self._raw.read(None if size is None or size < 0 else size, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise OneStopUnavailable(f"{self._what}: the answer stalled past the read timeout") from exc
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            cause = f"{type(exc).__name__}: {short_text(exc)[:150]}"
            raise TruncatedBody(f"{self._what}: the transfer broke off ({cause})") from exc


def read_all(response: requests.Response, what: str, limit: int) -> bytes:
    reader = BodyReader(ResponseBody(response, what), limit, f"{what}: the answer", setting=None)
    parts = []
    while chunk := reader.read(64 * 1024):
        parts.append(chunk)
    return b"".join(parts)


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, OverflowError):
        return None


def _status_error(response: requests.Response, what: str, sent_token: bool) -> Exception:
    status = response.status_code
    error = _error_in(response, what)
    detail = f": {error}" if error else ""
    if status == 429 or status >= 500:
        exc = OneStopUnavailable(f"{what}: the one-stop system answered HTTP {status}{detail}")
        exc.retry_after = retry_after(response)
        return exc
    if sent_token and (status in (401, 403) or (error is not None and error.is_token_error)):
        return TokenExpired(f"{what}: the one-stop system refused the token (HTTP {status}{detail})")
    if 300 <= status < 400:
        detail = f" to {response.headers.get('Location', '?')}"
    return OneStopRefused(f"{what}: the one-stop system answered HTTP {status}{detail}", status, str(error or ""))


def _error_in(response: requests.Response, what: str) -> ErrorBody | None:
    """What an error answer says, read from at most its first 64 KiB; None when it says nothing readable."""
    try:
        data = read_all(response, what, ERROR_BODY_LIMIT)
    except DongboError:  # the status alone already decides; the body is only a detail
        return None
    finally:
        response.close()
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        return error_of(json.loads(text)) or ErrorBody(short_text(text))
    except ValueError:
        return ErrorBody(short_text(text))
