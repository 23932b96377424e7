"""A safe, streaming fetcher for attachment URLs: the one place dongbo opens a connection a dossier names.

`url_file` comes from the one-stop system and is not trusted: it could point at the cloud metadata
address, at an internal service, or at a 10 GB file. So every URL, and every redirect hop, must name a
host listed in DONGBO_ALLOWED_FILE_HOSTS; bodies stream in chunks with the size limit enforced as bytes
arrive; and a body that ends early is an error, never a shorter file.

Host rules: only http/https; the host (case-insensitive, IDNA-encoded, IPv6 literals compressed) must be
listed, optionally with a port; a listed host is trusted even where it is a loopback or private address
(that is how an operator allows a one-stop server on 127.0.0.1 or the LAN); a listed *name* is still
refused when it resolves to a link-local address (169.254.0.0/16, fe80::/10: the cloud metadata
service), unless that IP literal itself is listed. The resolution check is defence in depth against a
hijacked DNS record; the list itself is the primary control.
"""

from __future__ import annotations

import http.cookiejar
import ipaddress
import logging
import re
import socket
import threading
from contextlib import contextmanager
from typing import Callable, Iterator
from urllib.parse import urljoin, urlsplit

import idna
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util import parse_url

from shared.errors import (
    ConfigError,
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
_METADATA_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS's IPv6 metadata address is not link-local
)
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address a name resolves to (the system resolver, as the connection itself will use)."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def normalize_host(host: str) -> str:
    """The canonical spelling of a host: lower case, no trailing dot, IDNA (xn--) or compressed IP."""
    host = host.strip().rstrip(".").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError("empty host")
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    if host.isascii():
        if not re.fullmatch(r"[a-z0-9_.-]+", host):
            raise ValueError(f"invalid host name {host!r}")
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"invalid host name {host!r}: {exc}") from None


def _parse_allowed(entries: frozenset[str]) -> dict[str, frozenset[int] | None]:
    """`host` allows any port, `host:port` (or `[v6]:port`) only that one."""
    allowed: dict[str, set[int] | None] = {}
    for entry in entries:
        text = entry.strip()
        port: int | None = None
        match = re.fullmatch(r"(\[[^\]]+\]|[^:\[\]]+):(\d{1,5})", text)
        if match:
            text, port = match.group(1), int(match.group(2))
        try:
            host = normalize_host(text)
        except ValueError as exc:
            raise ConfigError(f"DONGBO_ALLOWED_FILE_HOSTS: {exc}") from None
        if port is None:
            allowed[host] = None
        elif allowed.get(host, set()) is not None:
            allowed.setdefault(host, set()).add(port)
    return {host: (None if ports is None else frozenset(ports)) for host, ports in allowed.items()}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _is_metadata_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _METADATA_NETWORKS)


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
    """Opens attachment URLs under the host rules above; one requests.Session (connection pool) per thread."""

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
        self.allowed = _parse_allowed(frozenset(allowed_hosts))
        self.max_bytes = max_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.verify_tls = verify_tls
        self.max_redirects = max_redirects
        self._resolver = resolver
        self._pool_size = pool_size
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "FileSource":
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
        return self._prepare(self._session(), _literal(url))[0].url

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    # -- one request, hop by hop -----------------------------------------------------------------

    def _get(self, url: str) -> tuple[requests.Response, str, str]:
        session = self._session()
        seen: set[str] = set()
        current = _literal(url)
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
        raw_host = _raw_host(url)
        try:
            # requests quotes spaces and non-ASCII (UTF-8), and leaves valid %XX escapes, `!` and `~` alone.
            prepared = session.prepare_request(requests.Request("GET", url))
        except (requests.exceptions.RequestException, ValueError, UnicodeError):
            raise ForbiddenHost(f"file URL on {raw_host} is not a valid http(s) URL") from None
        parts = parse_url(prepared.url)  # urllib3's parser: the one that picks the host to connect to
        if parts.scheme not in ("http", "https"):
            raise ForbiddenHost(f"file URL on {raw_host} is not http or https")
        if parts.auth:
            raise ForbiddenHost(f"file URL on {raw_host} carries credentials")
        try:
            host = normalize_host(parts.host or "")
        except ValueError:
            raise ForbiddenHost(f"file URL on {raw_host} has no valid host") from None
        if raw_host != host:  # two parsers disagreeing about the host is an attack, never a real URL
            raise ForbiddenHost(f"file URL names an ambiguous host ({raw_host} or {host})")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._check_host(host, port)
        return prepared, host

    def _check_host(self, host: str, port: int) -> None:
        if host not in self.allowed:
            raise ForbiddenHost(f"file host {host} is not in DONGBO_ALLOWED_FILE_HOSTS")
        ports = self.allowed[host]
        if ports is not None and port not in ports:
            raise ForbiddenHost(f"file host {host} is allowed, but not on port {port}")
        if _is_ip(host):
            return  # an IP literal listed by the operator is trusted as configured
        try:
            addresses = self._resolver(host, port)
        except OSError as exc:
            raise FileSourceUnavailable(f"file host {host} does not resolve: {exc}") from None
        for address in addresses:
            if _is_metadata_address(address) and normalize_host(address) not in self.allowed:
                raise ForbiddenHost(f"file host {host} resolves to the link-local address {address}")

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


def _literal(url: str) -> str:
    """url_file as a URL: a stray `%` is a percent sign, and `#` a character of the file name.

    A fragment is never sent to a server, so a `#` in url_file can only mean the file name holds one.
    (Redirect targets are real URLs and keep their usual meaning.)
    """
    return _STRAY_PERCENT.sub("%25", url.strip()).replace("#", "%23")


def _raw_host(url: str) -> str:
    """The host as Python's URL parser reads the original text (for messages and the ambiguity check)."""
    try:
        host = urlsplit(url.strip()).hostname or ""
        return normalize_host(host) if host else "(no host)"
    except ValueError:
        return "(invalid host)"


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
