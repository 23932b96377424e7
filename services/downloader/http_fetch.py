"""A safe, streaming fetcher for attachment URLs: the one place dongbo opens a connection a dossier names.

`url_file` comes from the one-stop system and is not trusted: it could point at the cloud metadata
address, at an internal service, or at a 10 GB file. So every URL, and every redirect hop, must name a
host listed in DONGBO_ALLOWED_FILE_HOSTS (the rules are in `services.downloader.url_policy`); bodies stream in chunks
with the size limit enforced as bytes arrive; and a body that ends early is an error, never a shorter file.
"""

from __future__ import annotations

import http.cookiejar
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

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
    RedirectLoop,
    TruncatedBody,
)

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
USER_AGENT = "dongbo/0.1 (+file transfer)"
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Files need no cookies; a jar shared by every URL of a thread would only leak them between hosts."""

    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


class FileResponse:
    """An open file body: its headers, and its bytes as checked chunks."""

    def __init__(self, response: requests.Response, url: str, host: str, max_bytes: int, read_timeout: float):
        self.url = url
        self.host = host
        self.status = response.status_code
        self.etag: str | None = response.headers.get("ETag") or None
        self.server_content_type: str | None = response.headers.get("Content-Type") or None
        self.bytes_read = 0
        self.complete = False
        self._response = response
        self._max_bytes = max_bytes
        self._read_timeout = read_timeout
        self._started = False
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        # A compressed body is decoded as it streams; its Content-Length counts the compressed bytes,
        # which urllib3 itself enforces, so the decoded length is simply unknown here.
        self.content_length = None if encoding not in ("", "identity") else _content_length(response)

    def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The body in chunks; FileTooLarge past the limit, TruncatedBody when it ends short or breaks."""
        if self._started:
            raise RuntimeError("a file body can be read only once")
        self._started = True
        try:
            for chunk in self._response.raw.stream(chunk_size, decode_content=True):
                if not chunk:
                    continue
                self.bytes_read += len(chunk)
                if self.bytes_read > self._max_bytes:
                    raise FileTooLarge(f"file from {self.host} passed {self._max_bytes} bytes while streaming")
                yield chunk
        except urllib3.exceptions.ReadTimeoutError:
            raise TruncatedBody(
                f"file from {self.host} stalled: no data for {self._read_timeout:g}s after {self.bytes_read} bytes"
            ) from None
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
            # ProtocolError (IncompleteRead, connection reset), DecodeError, SSLError and friends.
            raise TruncatedBody(
                f"file from {self.host} broke off after {self.bytes_read} bytes"
                + (f" of {self.content_length}" if self.content_length is not None else "")
                + f": {_brief(exc)}"
            ) from None
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise TruncatedBody(f"file from {self.host} ended at {self.bytes_read} of {self.content_length} bytes")
        self.complete = True

    def close(self) -> None:
        if self.complete:
            self._response.raw.release_conn()  # a fully read connection goes back to the pool for reuse
        else:
            self._response.close()  # a half-read one is dropped: its unread bytes would poison the next request


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value.strip())
    except ValueError:
        return None
    return length if length >= 0 else None


class FileSource:
    """Opens attachment URLs that `HostPolicy` allows; one requests.Session (connection pool) per thread."""

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
    ):
        self.policy = HostPolicy(allowed_hosts, resolver)
        self.max_bytes = max_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.verify_tls = verify_tls
        self.max_redirects = max_redirects
        self._pool_size = pool_size
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> FileSource:
        return cls(
            allowed_hosts=settings.file_hosts,
            max_bytes=settings.max_file_bytes,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            verify_tls=settings.onestop_verify_tls,
            pool_size=settings.download_concurrency,
        )

    # -- the public verbs ------------------------------------------------------------------------

    @contextmanager
    def open(self, url: str) -> Iterator[FileResponse]:
        """GETs `url`, following allowed redirects; yields the body unread and closes it afterwards."""
        response, final_url, host = self._get(url)
        file = FileResponse(response, final_url, host, self.max_bytes, self.read_timeout)
        try:
            if file.content_length is not None and file.content_length > self.max_bytes:
                raise FileTooLarge(
                    f"file from {host} is {file.content_length} bytes, over the limit of {self.max_bytes}"
                )
            yield file
        finally:
            file.close()

    def check_url(self, url: str) -> str:
        """Raises ForbiddenHost unless `url` may be fetched; returns the request URL as it will be sent."""
        return self._prepare(self._session(), literal_url(url))[0].url

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    # -- one request, hop by hop -----------------------------------------------------------------

    def _get(self, url: str) -> tuple[requests.Response, str, str]:
        session = self._session()
        seen: set[str] = set()
        current = literal_url(url)
        for _hop in range(self.max_redirects + 1):
            prepared, host = self._prepare(session, current)
            if prepared.url in seen:
                raise RedirectLoop(f"file URL on {host} redirects in a circle")
            seen.add(prepared.url)
            try:
                response = session.send(
                    prepared,
                    stream=True,
                    allow_redirects=False,
                    timeout=(self.connect_timeout, self.read_timeout),
                    verify=self.verify_tls,
                )
            except requests.exceptions.Timeout:
                raise FileSourceUnavailable(f"file host {host} timed out") from None
            except (requests.exceptions.ConnectionError, urllib3.exceptions.HTTPError, OSError) as exc:
                raise FileSourceUnavailable(f"file host {host} could not be reached: {type(exc).__name__}") from None
            except requests.exceptions.RequestException as exc:  # InvalidURL and the like: never fetchable
                raise FileRefused(f"file URL on {host} cannot be requested: {type(exc).__name__}") from None
            if response.status_code in REDIRECTS and response.headers.get("Location"):
                current = urljoin(prepared.url, _header_text(response.headers["Location"]))
                self._discard(response)
                log.debug("file URL on %s redirects to %s", host, _describe(current))
                continue
            try:
                self._check_status(response, host)
            except BaseException:
                response.close()
                raise
            return response, prepared.url, host
        raise RedirectLoop(f"file URL on {host} redirects more than {self.max_redirects} times")

    def _prepare(self, session: requests.Session, url: str) -> tuple[requests.PreparedRequest, str]:
        """The request as it will go out, after checking the host it will connect to."""
        written_host = raw_host(url)
        try:
            # requests quotes spaces and non-ASCII (UTF-8), and leaves valid %XX escapes, `!` and `~` alone.
            prepared = session.prepare_request(requests.Request("GET", url))
        except (requests.exceptions.RequestException, ValueError, UnicodeError):
            raise ForbiddenHost(f"file URL on {written_host} is not a valid http(s) URL") from None
        return prepared, self.policy.check_request_url(prepared.url, written_host)

    @staticmethod
    def _check_status(response: requests.Response, host: str) -> None:
        status = response.status_code
        if status in (200, 203):
            return
        if status in (404, 410):
            raise FileNotFound(f"file host {host} answered {status}: no such file")
        if status in (408, 429) or status >= 500:
            raise FileSourceUnavailable(f"file host {host} answered {status}")
        raise FileRefused(f"file host {host} answered {status}")

    @staticmethod
    def _discard(response: requests.Response) -> None:
        """Reads a small redirect body so its connection can be reused; drops the connection otherwise."""
        try:
            length = _content_length(response)
            if length is not None and length <= CHUNK_SIZE:
                response.content  # noqa: B018 - reading it releases the connection to the pool
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError):
            pass
        response.close()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies or .netrc credentials from the environment
            session.cookies.set_policy(_NoCookies())
            session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*"})
            adapter = HTTPAdapter(pool_connections=self._pool_size, pool_maxsize=self._pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session



def _header_text(value: str) -> str:
    """HTTP headers arrive as latin-1; a Location written in UTF-8 is turned back into its characters."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


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
