"""One POST to the one-stop API, and what its HTTP outcome means; and the bounded body decoder.

Every outcome becomes either a response (2xx) or a dongbo error: OneStopUnavailable for faults that may heal
(no connection, timeouts, 5xx, 429 with its Retry-After), TokenExpired for a refused token, OneStopRefused
for any other 3xx/4xx. Bodies are always streamed and read with a limit. Nothing here logs or repeats the
request body or headers, which hold the password and the token.

Answers are untrusted input, so three things requests and urllib3 would do by default are avoided:
- A 3xx is never followed and its body never read. `Session.send` resolves `response.next` even with
  `allow_redirects=False`, and to do so reads and decodes the whole redirect body (an 822-byte gzip body
  became 847 MiB). Requests therefore go straight to the connection adapter, and a 3xx is closed unread.
- A `Retry-After` on a 429/503 never makes urllib3 drain the body into memory (`respect_retry_after_header`
  is off: the retry policy above the transport reads that header itself).
- Compressed bodies are decoded here, by `ContentDecoder`, which never produces more than the reader asked
  for: the byte limits count decoded bytes, and a decompression bomb costs one chunk of memory at a time,
  whatever urllib3 version is installed. The file downloader uses the same decoder.
"""

from __future__ import annotations

import http.client
import json
import math
import time
import zlib
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, cast

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from urllib3.util.retry import Retry

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
READ_CHUNK = 64 * 1024
# What dongbo can decode itself (ContentDecoder); asking for exactly these keeps brotli or zstd, which
# requests would advertise whenever their packages happen to be installed, from ever arriving.
ACCEPT_ENCODING = "gzip, deflate"


def no_retries() -> Retry:
    """urllib3 retries nothing, never follows a redirect, and never drains a body because of Retry-After."""
    return Retry(total=0, read=False, redirect=False, respect_retry_after_header=False, raise_on_status=False)


def new_session() -> requests.Session:
    """A session of its own: a pool large enough for many threads, and no retries below ours."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=no_retries())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class UndecodableBody(ValueError):
    """A body in a Content-Encoding dongbo does not decode, or whose compressed data is corrupt."""


class ContentDecoder:
    """Decodes a body compressed with gzip or deflate (or not at all), a bounded piece at a time.

    `feed()` the raw bytes as they arrive, then `take(limit)` until it returns b"": no call ever holds more
    than `limit` decoded bytes, so a 1 KB body that inflates to gigabytes is just a long series of small
    pieces, which the caller counts against its limit and stops.
    """

    def __init__(self, content_encoding: str | None):
        encodings = [part.strip().lower() for part in (content_encoding or "").split(",") if part.strip()]
        encodings = [part for part in encodings if part != "identity"]
        if len(encodings) > 1:
            raise UndecodableBody(f"the body is encoded {len(encodings)} times ({', '.join(encodings)[:80]})")
        self.encoding = encodings[0] if encodings else ""
        if self.encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif self.encoding == "deflate":
            self._wbits = zlib.MAX_WBITS  # the zlib format, as the standard says; raw deflate is tried next
        elif self.encoding:
            raise UndecodableBody(f"the body is in an encoding dongbo does not decode ({self.encoding[:40]!r})")
        self.passthrough = not self.encoding
        self._input = b""
        self._started = False
        self._finished = False
        self._inflater = zlib.decompressobj(self._wbits) if not self.passthrough else None

    def feed(self, data: bytes) -> None:
        self._input = self._input + data if self._input else data

    def take(self, limit: int) -> bytes:
        """At most `limit` decoded bytes; b"" once everything fed so far is decoded."""
        if self.passthrough:
            if len(self._input) <= limit:
                chunk, self._input = self._input, b""
            else:
                chunk, self._input = self._input[:limit], self._input[limit:]
            return chunk
        while self._input and not self._finished:
            inflater = self._inflater
            assert inflater is not None
            try:
                out = inflater.decompress(self._input, limit)
            except zlib.error as exc:
                if self.encoding == "deflate" and not self._started:
                    # Some servers send raw deflate without the zlib header: start over in that format.
                    self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._started = True
                    continue
                raise UndecodableBody(f"the {self.encoding} data is corrupt: {exc}") from None
            self._started = True
            self._input = inflater.unconsumed_tail
            if inflater.eof:
                rest = inflater.unused_data + self._input
                if self.encoding in ("gzip", "x-gzip") and rest.startswith(b"\x1f\x8b"):
                    self._inflater = zlib.decompressobj(self._wbits)  # a gzip body may hold several members
                    self._input = rest
                else:
                    self._finished = True  # what trails the stream is not data (urllib3 ignores it too)
                    self._input = b""
            if out:
                return out
        return b""

    def finish(self) -> None:
        """At the end of the body: UndecodableBody when the compressed stream stopped half-way."""
        if not self.passthrough and self._started and not self._finished and not (
            self._inflater is not None and self._inflater.eof
        ):
            raise UndecodableBody(f"the {self.encoding} data ends before its end marker")


class Transport:
    """Sends JSON to `{base_url}{endpoint}` with connect/read timeouts; never follows redirects."""

    def __init__(self, base_url: str, session: requests.Session, timeout: tuple[float, float], verify_tls: bool):
        self.base_url = base_url
        self.session = session
        self.timeout = timeout
        self.verify_tls = verify_tls

    def post(self, endpoint: str, payload: Any, *, what: str, token: str | None = None) -> requests.Response:
        """The streamed response of a 2xx answer (the caller closes it), or an error."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = self._send(
                requests.Request("POST", self.base_url + endpoint, json=payload, headers=headers)
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

    def _send(self, request: requests.Request) -> requests.Response:
        """Sends through the session's adapter, not `Session.send`: that would read a redirect's body."""
        session = self.session
        prepared = session.prepare_request(request)
        assert prepared.url is not None
        # The session's own proxy and TLS settings (trust_env is the session owner's decision).
        options = session.merge_environment_settings(prepared.url, {}, True, self.verify_tls, None)
        verify = options["verify"]
        response = session.get_adapter(prepared.url).send(
            prepared, stream=True, timeout=self.timeout, verify=self.verify_tls if verify is None else verify,
            cert=options["cert"], proxies=options["proxies"],
        )
        extract_cookies_to_jar(session.cookies, prepared, response.raw)
        return response

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
    """`response.raw` as a file-like object that decodes gzip and turns broken transfers into dongbo errors.

    `read(n)` returns at most n decoded bytes (see ContentDecoder), so the reader's limit is a limit on
    what the answer really holds, and memory stays at a chunk whatever the compression ratio.
    """

    def __init__(self, response: requests.Response, what: str):
        self._raw = response.raw
        self._what = what
        self._ended = False
        try:
            self._decoder = ContentDecoder(response.headers.get("Content-Encoding"))
        except UndecodableBody as exc:
            raise MalformedResponse(f"{what}: {exc}") from None

    def read(self, size: int | None = -1) -> bytes:
        if size == 0:
            return b""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(READ_CHUNK), b""))
        try:
            while True:
                chunk = self._decoder.take(size)
                if chunk or self._ended:
                    return chunk
                data = self._raw.read(READ_CHUNK, decode_content=False)
                if data:
                    self._decoder.feed(data)
                else:
                    self._ended = True
                    self._decoder.finish()
        except UndecodableBody as exc:
            raise MalformedResponse(f"{self._what}: {exc}") from None
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise OneStopUnavailable(f"{self._what}: the answer stalled past the read timeout") from exc
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            cause = f"{type(exc).__name__}: {short_text(exc)[:150]}"
            raise TruncatedBody(f"{self._what}: the transfer broke off ({cause})") from exc


def read_all(response: requests.Response, what: str, limit: int) -> bytes:
    reader = BodyReader(cast(BinaryIO, ResponseBody(response, what)), limit, f"{what}: the answer", setting=None)
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
    if 300 <= status < 400:
        # Never followed and never read: the one-stop API has no reason to redirect a POST, and its body
        # could be anything (a gzip bomb). Closing drops the connection with whatever it still holds.
        location = _printable(response.headers.get("Location", "?"))
        response.close()
        return OneStopRefused(f"{what}: the one-stop system answered HTTP {status} to {location}", status)
    error = _error_in(response, what)
    detail = f": {error}" if error else ""
    if status == 429 or status >= 500:
        return OneStopUnavailable(f"{what}: the one-stop system answered HTTP {status}{detail}",
                                  retry_after=retry_after(response))
    if sent_token and (status in (401, 403) or (error is not None and error.is_token_error)):
        return TokenExpired(f"{what}: the one-stop system refused the token (HTTP {status}{detail})")
    return OneStopRefused(f"{what}: the one-stop system answered HTTP {status}{detail}", status, str(error or ""))


def _printable(value: str, limit: int = 200) -> str:
    """A header value for a message: what is not printable ASCII is escaped, and it is cut short."""
    text = value if value.isascii() and value.isprintable() else ascii(value)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
