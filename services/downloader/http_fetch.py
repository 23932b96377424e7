"""A safe, streaming fetcher for attachment URLs: the one place dongbo opens a connection a dossier names.

`url_file` comes from the one-stop system and is not trusted: it could point at the cloud metadata
address, at an internal service, or at a 10 GB file, and the host behind it may be careless or hostile.
So:
- every URL, and every redirect hop, must name a host listed in DONGBO_ALLOWED_FILE_HOSTS (the rules are in
  `services.downloader.url_policy`), and the address each connection reaches is checked again after connect
  (`services.downloader.guard`), so DNS rebinding cannot move a checked name onto the metadata service;
- redirects are followed here, a bounded number of hops, and a redirect's body is never read; a
  `Location` that is not UTF-8 is a refusal;
- bodies stream in chunks, decoded here a bounded piece at a time (`ContentDecoder`), with the size limit
  counted on the decoded bytes, so a gzip bomb is refused as file-too-large after one chunk of memory;
- a body that ends early is an error, never a shorter file;
- each file has a total deadline (DONGBO_FILE_DEADLINE) covering every hop and the whole body; past it
  the sockets are shut down and the transfer fails as `FileTooSlow` (retried, then parked as
  `file-too-slow`), however politely the host drips its bytes.

URLs are quoted as requests quotes them (what a file host has always been sent), and the request goes
straight to urllib3's pool: requests' session and adapter would add nothing here but CPU per file (cookies,
hooks, environment settings, a second copy of the headers).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from urllib3.util import Url

from services.downloader.errors import FileTooSlow
from services.downloader.guard import Transfer, checked_pool_manager
from services.downloader.url_policy import (
    HostPolicy,
    Resolver,
    literal_url,
    normalize_host,  # noqa: F401 - importable from here as before the split
    raw_host,
    resolve,
)
from shared.errors import (
    FileNotFound,
    FileRefused,
    FileSourceUnavailable,
    FileTooLarge,
    ForbiddenHost,
    PermanentError,
    RedirectLoop,
    TruncatedBody,
)
from shared.onestop.transport import ContentDecoder, UndecodableBody

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
USER_AGENT = "dongbo/0.1 (+file transfer)"
# No cookies are kept, no credentials sent and no proxy used: nothing a file host or the environment sets.
HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*", "Connection": "keep-alive"}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# The default total time for one file: DONGBO_MAX_FILE_BYTES at a slow link's 1 MB/s, plus a fifth for
# the redirects, the connection and the upload, and never under ten minutes. 2 GiB gives about 43 min,
# which still ends well before the fetcher's DONGBO_INFLIGHT_TIMEOUT (an hour) republishes the dossier.
SLOW_LINK_BYTES_PER_SECOND = 1_000_000
MIN_DEADLINE = 600.0
# Health turns red when a transfer outlives its deadline by this much: the deadline did not free it.
OVERDUE_GRACE = 60.0


def default_deadline(max_bytes: int) -> float:
    return max(MIN_DEADLINE, max_bytes / SLOW_LINK_BYTES_PER_SECOND * 1.2)


class FileResponse:
    """An open file body: its headers, and its bytes as checked chunks."""

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        url: str,
        host: str,
        max_bytes: int,
        read_timeout: float,
        transfer: Transfer | None = None,
    ):
        self.url = url
        self.host = host
        self.status = response.status
        self.etag: str | None = response.headers.get("ETag") or None
        self.server_content_type: str | None = response.headers.get("Content-Type") or None
        self.bytes_read = 0
        self.complete = False
        self._response = response
        self._max_bytes = max_bytes
        self._read_timeout = read_timeout
        self._transfer = transfer
        self._started = False
        try:
            self._decoder = ContentDecoder(response.headers.get("Content-Encoding"))
        except UndecodableBody as exc:
            raise FileRefused(f"file from {host}: {exc}") from None
        # A compressed body is decoded as it streams; its Content-Length counts the compressed bytes,
        # which urllib3 itself enforces, so the decoded length is simply unknown here.
        self.content_length = _content_length(response) if self._decoder.passthrough else None

    def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The body in chunks; FileTooLarge past the limit, TruncatedBody when it ends short or breaks."""
        if self._started:
            raise RuntimeError("a file body can be read only once")
        self._started = True
        decoder = self._decoder
        try:
            # Raw bytes from urllib3, decoded here: never more than one chunk of decoded data at once.
            for data in self._response.stream(chunk_size, decode_content=False):
                decoder.feed(data)
                while chunk := decoder.take(chunk_size):
                    self.bytes_read += len(chunk)
                    if self.bytes_read > self._max_bytes:
                        raise FileTooLarge(
                            f"file from {self.host} passed {self._max_bytes} bytes while streaming"
                            + (f" (decoded from {decoder.encoding})" if not decoder.passthrough else "")
                        )
                    yield chunk
                self._check_deadline()
            decoder.finish()
            # A socket shut down by the deadline reads as a clean end of a body without a length: such
            # an ending is never trusted as the whole file.
            self._check_deadline()
        except UndecodableBody as exc:
            raise TruncatedBody(f"file from {self.host} after {self.bytes_read} bytes: {exc}") from None
        except urllib3.exceptions.ReadTimeoutError:
            raise TruncatedBody(
                f"file from {self.host} stalled: no data for {self._read_timeout:g}s after {self.bytes_read} bytes"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # ProtocolError (IncompleteRead, connection reset), DecodeError, SSLError and friends.
            raise TruncatedBody(
                f"file from {self.host} broke off after {self.bytes_read} bytes"
                + (f" of {self.content_length}" if self.content_length is not None else "")
                + f": {_brief(exc)}"
            ) from None
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise TruncatedBody(f"file from {self.host} ended at {self.bytes_read} of {self.content_length} bytes")
        self.complete = True

    def _check_deadline(self) -> None:
        if self._transfer is not None and self._transfer.expired:
            raise FileTooSlow(f"file from {self.host} passed its deadline after {self.bytes_read} bytes")

    def close(self, reuse: bool = True) -> None:
        if self.complete and reuse:
            self._response.release_conn()  # a fully read connection goes back to the pool for reuse
        else:
            # A half-read one is dropped: its unread bytes would poison the next request. So is one whose
            # socket the deadline shut down.
            _discard(self._response)


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Closes a response with its connection; the pool's slot comes back empty and connects anew when used."""
    response.close()
    response.release_conn()


def _content_length(response: urllib3.BaseHTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value.strip())
    except ValueError:
        return None
    return length if length >= 0 else None


class FileSource:
    """Opens attachment URLs that `HostPolicy` allows, over one thread-safe pool of checked connections."""

    def __init__(
        self,
        allowed_hosts: frozenset[str],
        max_bytes: int,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        verify_tls: bool = True,
        max_redirects: int = 5,
        *,
        resolver: Resolver = resolve,
        pool_size: int = 4,
        deadline: float | None = None,
    ):
        self.policy = HostPolicy(allowed_hosts, resolver)
        self.deadline = deadline if deadline is not None else default_deadline(max_bytes)
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.max_redirects = max_redirects
        self._http = checked_pool_manager(pool_size, verify_tls)
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._lock = threading.Lock()
        self._active: set[Transfer] = set()

    @classmethod
    def from_settings(cls, settings) -> FileSource:
        return cls(
            allowed_hosts=settings.file_hosts,
            max_bytes=settings.max_file_bytes,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            verify_tls=settings.onestop_verify_tls,
            pool_size=settings.download_concurrency,
            deadline=settings.file_deadline,
        )

    # -- the public verbs ------------------------------------------------------------------------

    @contextmanager
    def open(self, url: str) -> Iterator[FileResponse]:
        """GETs `url`, following allowed redirects; yields the body unread and closes it afterwards.

        Everything from the first connection to the end of the `with` block (the caller's upload reads
        the body inside it) runs under the file's deadline; past it, the error is FileTooSlow.
        """
        transfer = Transfer(self.policy, self.deadline, raw_host(url))
        with self._lock:
            self._active.add(transfer)
        file: FileResponse | None = None
        try:
            with transfer:
                try:
                    response, final_url, host = self._get(url)
                    if transfer.expired:  # the headers "ended" because the deadline shut the socket
                        _discard(response)
                        raise FileTooSlow("")
                    file = FileResponse(response, final_url, host, self.max_bytes, self.read_timeout, transfer)
                    if file.content_length is not None and file.content_length > self.max_bytes:
                        raise FileTooLarge(
                            f"file from {host} is {file.content_length} bytes, over the limit of {self.max_bytes}"
                        )
                    yield file
                except Exception as exc:
                    # Past the deadline the sockets were shut down: whatever broke next (a truncated body,
                    # a lost connection, the upload that read from it) was the deadline. A permanent
                    # verdict reached on its own (too large, refused) stands.
                    if transfer.expired and not isinstance(exc, PermanentError):
                        raise FileTooSlow(
                            f"file from {transfer.what} took longer than {self.deadline:g}s "
                            f"(DONGBO_FILE_DEADLINE){_progress(file)}; abandoned"
                        ) from None
                    raise
        finally:
            with self._lock:
                self._active.discard(transfer)
            if file is not None:
                file.close(reuse=not transfer.expired)  # `with transfer` has ended: the clock has stopped

    def overdue(self) -> float | None:
        """Seconds the oldest transfer has run, when that is past its deadline plus a grace; else None.

        The deadline shuts a transfer's sockets; one still running after that is stuck somewhere else.
        """
        with self._lock:
            ages = [transfer.age for transfer in self._active]
        oldest = max(ages, default=0.0)
        return oldest if oldest > self.deadline + OVERDUE_GRACE else None

    def check_url(self, url: str) -> str:
        """Raises ForbiddenHost unless `url` may be fetched; returns the request URL as it will be sent.

        A dry run: it also resolves the name and checks the addresses, which a real fetch leaves to the
        check of the connected socket.
        """
        return self._prepare(literal_url(url))[0]

    def close(self) -> None:
        self._http.clear()

    # -- one request, hop by hop -----------------------------------------------------------------

    def _get(self, url: str) -> tuple[urllib3.BaseHTTPResponse, str, str]:
        seen: set[str] = set()
        current = literal_url(url)
        for _hop in range(self.max_redirects + 1):
            request_url, parts, host = self._prepare(current, resolve=False)  # the connection checks its address
            if request_url in seen:
                raise RedirectLoop(f"file URL on {host} redirects in a circle")
            seen.add(request_url)
            try:
                # No redirects, retries or decoding by urllib3: each hop is checked here, a failure is the
                # queue's to retry, and the body is decoded a bounded piece at a time.
                # The pool is picked from the URL as checked: parsed once, not again by the pool manager.
                pool = self._http.connection_from_host(parts.host, port=parts.port, scheme=parts.scheme)
                response = pool.urlopen(
                    "GET", parts.request_uri, headers=HEADERS, redirect=False, retries=False,
                    assert_same_host=False, preload_content=False, decode_content=False, timeout=self._timeout,
                )
            except urllib3.exceptions.LocationParseError as exc:  # never fetchable, however often retried
                raise FileRefused(f"file URL on {host} cannot be requested: {type(exc).__name__}") from None
            except urllib3.exceptions.NewConnectionError as exc:  # before TimeoutError: it is a subclass
                raise FileSourceUnavailable(f"file host {host} could not be reached: {type(exc).__name__}") from None
            except urllib3.exceptions.TimeoutError:
                raise FileSourceUnavailable(f"file host {host} timed out") from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise FileSourceUnavailable(f"file host {host} could not be reached: {type(exc).__name__}") from None
            if response.status in REDIRECTS and response.headers.get("Location"):
                location = response.headers["Location"]
                # Closed unread: the body of a redirect is never needed, and could be a bomb. The
                # connection goes with it (a new one costs far less than the risk).
                _discard(response)
                current = urljoin(request_url, _location_text(location, host, response.status))
                log.debug("file URL on %s redirects to %s", host, _describe(current))
                continue
            try:
                self._check_status(response, host)
            except BaseException:
                _discard(response)
                raise
            return response, request_url, host
        raise RedirectLoop(f"file URL on {host} redirects more than {self.max_redirects} times")

    def _prepare(self, url: str, *, resolve: bool = True) -> tuple[str, Url, str]:
        """The URL as it will be requested, parsed, and the host it names, after checking that host."""
        written_host = raw_host(url)
        try:
            # requests quotes spaces and non-ASCII (UTF-8), and leaves valid %XX escapes, `!` and `~` alone.
            prepared = requests.PreparedRequest()
            prepared.prepare_url(url, None)
        except (requests.exceptions.RequestException, ValueError, UnicodeError):
            raise ForbiddenHost(f"file URL on {written_host} is not a valid http(s) URL") from None
        assert prepared.url is not None
        host, parts = self.policy.check_request_url(prepared.url, written_host, resolve=resolve)
        return prepared.url, parts, host

    @staticmethod
    def _check_status(response: urllib3.BaseHTTPResponse, host: str) -> None:
        status = response.status
        if status in (200, 203):
            return
        if status in (404, 410):
            raise FileNotFound(f"file host {host} answered {status}: no such file")
        if status in (408, 429) or status >= 500:
            raise FileSourceUnavailable(f"file host {host} answered {status}")
        raise FileRefused(f"file host {host} answered {status}")


def _location_text(value: str, host: str, status: int) -> str:
    """A redirect's Location as text: headers arrive as latin-1, a Location is UTF-8 (RFC 3986 / 3987).

    Bytes that are not UTF-8 cannot name any URL the host meant; guessing would fetch some other file.
    """
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise FileRefused(
            f"file host {host} answered {status} with a Location that is not valid UTF-8: {ascii(value)[1:80]}"
        ) from None


def _progress(file: FileResponse | None) -> str:
    if file is None:
        return " before its body began"
    return f" after {file.bytes_read} bytes" + (f" of {file.content_length}" if file.content_length else "")


def _brief(exc: BaseException) -> str:
    """An error in one short line: urllib3's messages name the cause ("IncompleteRead(...)"), never the URL."""
    detail = str(exc.args[0]) if exc.args else ""
    return f"{type(exc).__name__}: {detail}"[:200] if detail else type(exc).__name__


def _describe(url: str) -> str:
    """Host and path of a URL for logs, without credentials or query."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}{parts.path[:120]}"
    except ValueError:
        return "(invalid URL)"
