"""One POST to the one-stop API, and what its HTTP outcome means; and the bounded body decoder.

Every outcome becomes either a response (2xx) or a dongbo error: OneStopUnavailable for faults that may heal
(no connection, timeouts, 5xx, 429 with its Retry-After), TokenExpired for a refused token, OneStopRefused
for any other 3xx/4xx. Bodies are always streamed and read with a limit. Nothing here logs or repeats the
request body or headers, which hold the password and the token.

Requests go straight to a urllib3 pool (a proxy's, when DONGBO_ONESTOP_PROXY names one): no environment
proxy, no ~/.netrc, no cookies. Answers are untrusted input, so three things an HTTP library may do by
default are avoided:
- A 3xx is never followed and its body never read: it is closed with its connection.
- A `Retry-After` on a 429/503 never makes urllib3 drain the body into memory (no retries below ours: the
  retry policy above the transport reads that header itself).
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
from urllib.parse import unquote

import certifi
import urllib3
import urllib3.exceptions
from urllib3.util import parse_url

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
POOL_SIZE = 32  # connections kept for reuse: enough for the acker's report threads
READ_CHUNK = 64 * 1024
# What dongbo can decode itself (ContentDecoder), and nothing else: no brotli or zstd ever arrives.
ACCEPT_ENCODING = "gzip, deflate"


def new_pool(verify_tls: bool, proxy: str | None = None) -> urllib3.PoolManager:
    """Connections to the one-stop system, shared by threads: through `proxy` when one is named.

    Certificates are checked against certifi's roots, as requests does. A user and password in the proxy's
    URL are what it is logged in with (HTTP: Proxy-Authorization; SOCKS5: its user/password method).
    """
    tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", "ca_certs": certifi.where()} if verify_tls else {
        "cert_reqs": "CERT_NONE"}
    if not proxy:
        return urllib3.PoolManager(num_pools=4, maxsize=POOL_SIZE, block=False, **tls)
    if parse_url(proxy).scheme in ("socks5", "socks5h"):  # socks5h: the proxy resolves the name
        from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks, which only a proxy of this kind uses

        return SOCKSProxyManager(proxy, num_pools=4, maxsize=POOL_SIZE, block=False, **tls)
    auth = parse_url(proxy).auth
    headers = urllib3.make_headers(proxy_basic_auth=unquote(auth)) if auth else None
    return urllib3.ProxyManager(proxy, num_pools=4, maxsize=POOL_SIZE, block=False, proxy_headers=headers, **tls)


def close_response(response: urllib3.BaseHTTPResponse) -> None:
    """Done with a response: a connection whose body was read to its end goes back to the pool for reuse;
    one closed half-way is dropped (what it still held must never be read as the next answer)."""
    response.close()
    response.release_conn()


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

    def __init__(self, base_url: str, timeout: tuple[float, float], verify_tls: bool, proxy: str | None = None):
        self.base_url = base_url
        self.timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self.pool = new_pool(verify_tls, proxy)

    def close(self) -> None:
        self.pool.clear()

    def post(self, endpoint: str, payload: Any, *, what: str,
             token: str | None = None) -> urllib3.BaseHTTPResponse:
        """The streamed response of a 2xx answer (the caller closes it with `close_response`), or an error."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING,
                   "Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            body = json.dumps(payload, allow_nan=False).encode()
            # No retries (the policy above decides), no redirects and no decoding by urllib3.
            response = self.pool.urlopen(
                "POST", self.base_url + endpoint, body=body, headers=headers, timeout=self.timeout,
                retries=False, redirect=False, preload_content=False, decode_content=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # before TimeoutError: it is a subclass
            raise OneStopUnavailable(f"{what}: cannot reach the one-stop system ({type(exc).__name__})") from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise OneStopUnavailable(f"{what}: no answer within the timeout ({type(exc).__name__})") from exc
        except ValueError as exc:  # a URL urllib3 cannot parse (LocationValueError), a payload JSON cannot hold
            raise OneStopRefused(f"{what}: the request could not be sent ({type(exc).__name__})") from exc
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise OneStopUnavailable(f"{what}: cannot reach the one-stop system ({type(exc).__name__})") from exc
        if response.status < 300:
            return response
        raise _status_error(response, what, token is not None)

    def post_json(self, endpoint: str, payload: Any, *, what: str, token: str | None = None) -> Any:
        """The JSON of a 2xx answer. Numbers with a fraction stay text, so that codes keep their digits."""
        response = self.post(endpoint, payload, what=what, token=token)
        try:
            data = read_all(response, what, ANSWER_LIMIT)
        finally:
            close_response(response)
        if not data.strip():
            raise MalformedResponse(f"{what}: the answer is empty")
        try:
            return json.loads(data, parse_float=str)
        except ValueError as exc:
            raise MalformedResponse(f"{what}: the answer is not JSON ({str(exc)[:80]})") from None


class ResponseBody:
    """A streamed response as a file-like object that decodes gzip and turns broken transfers into dongbo errors.

    `read(n)` returns at most n decoded bytes (see ContentDecoder), so the reader's limit is a limit on
    what the answer really holds, and memory stays at a chunk whatever the compression ratio.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse, what: str):
        self._raw = response
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


def read_all(response: urllib3.BaseHTTPResponse, what: str, limit: int) -> bytes:
    reader = BodyReader(cast(BinaryIO, ResponseBody(response, what)), limit, f"{what}: the answer", setting=None)
    parts = []
    while chunk := reader.read(64 * 1024):
        parts.append(chunk)
    return b"".join(parts)


def retry_after(response: urllib3.BaseHTTPResponse) -> float | None:
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


def _status_error(response: urllib3.BaseHTTPResponse, what: str, sent_token: bool) -> Exception:
    status = response.status
    if 300 <= status < 400:
        # Never followed and never read: the one-stop API has no reason to redirect a POST, and its body
        # could be anything (a gzip bomb). Closing drops the connection with whatever it still holds.
        location = _printable(response.headers.get("Location", "?"))
        close_response(response)
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


def _error_in(response: urllib3.BaseHTTPResponse, what: str) -> ErrorBody | None:
    """What an error answer says, read from at most its first 64 KiB; None when it says nothing readable."""
    try:
        data = read_all(response, what, ERROR_BODY_LIMIT)
    except DongboError:  # the status alone already decides; the body is only a detail
        return None
    finally:
        close_response(response)
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        return error_of(json.loads(text)) or ErrorBody(short_text(text))
    except ValueError:
        return ErrorBody(short_text(text))
