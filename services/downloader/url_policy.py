"""Which attachment URLs dongbo may open, and how a `url_file` from the one-stop system is read as a URL.

Host rules: only http/https; the host (case-insensitive, IDNA-encoded, IPv6 literals compressed) must be
listed, optionally with a port; a listed host is trusted even where it is a loopback or private address
(that is how an operator allows a one-stop server on 127.0.0.1 or the LAN); a listed *name* is still
refused when it resolves to a link-local address (169.254.0.0/16, fe80::/10: the cloud metadata
service), unless that IP literal itself is listed. The list itself is the primary control; the
link-local rule is defence in depth against a hijacked DNS record.

The link-local rule is applied to the address a connection is actually made to (`check_peer`, called by
the fetcher on the connected socket, before a byte is sent). Checking a name's resolution and then
letting the connection resolve it again would let a rebinding DNS server answer "safe" to the first
lookup and "metadata" to the second. `check_host` still resolves a name for `check_url`, the dry run
that explains a refusal before any transfer.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import idna
from urllib3.util import Url, parse_url

from shared.errors import ConfigError, FileSourceUnavailable, ForbiddenHost

_METADATA_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS's IPv6 metadata address is not link-local
)
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address a name resolves to (the system resolver, as the connection itself will use)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


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
        elif host not in allowed:
            allowed[host] = {port}
        else:
            ports = allowed[host]
            if ports is not None:  # a bare `host` elsewhere in the list already allows every port
                ports.add(port)
    return {host: (None if ports is None else frozenset(ports)) for host, ports in allowed.items()}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _is_metadata_address(address: str, networks: tuple = _METADATA_NETWORKS) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class HostPolicy:
    """DONGBO_ALLOWED_FILE_HOSTS, and the checks every request URL (each redirect hop too) must pass."""

    def __init__(self, allowed_hosts: frozenset[str], resolver: Resolver = resolve):
        self.allowed = _parse_allowed(frozenset(allowed_hosts))
        self.resolver = resolver
        # The networks of the cloud metadata service; an attribute so a test can put one on loopback.
        self.metadata_networks: tuple = _METADATA_NETWORKS

    def check_request_url(self, url: str, written_host: str, *, resolve: bool = True) -> tuple[str, Url]:
        """The host a prepared request `url` will connect to, and the URL parsed; ForbiddenHost unless it may.

        `written_host` is `raw_host` of the URL as written, before requests quoted it. The parsed URL is the
        one the request is then sent by, so the host checked is the host connected to.
        """
        parts = parse_url(url)  # urllib3's parser: the one that picks the host to connect to
        if parts.scheme not in ("http", "https"):
            raise ForbiddenHost(f"file URL on {written_host} is not http or https")
        if parts.auth:
            raise ForbiddenHost(f"file URL on {written_host} carries credentials")
        try:
            host = normalize_host(parts.host or "")
        except ValueError:
            raise ForbiddenHost(f"file URL on {written_host} has no valid host") from None
        if written_host != host:  # two parsers disagreeing about the host is an attack, never a real URL
            raise ForbiddenHost(f"file URL names an ambiguous host ({written_host} or {host})")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.check_host(host, port, resolve=resolve)
        return host, parts

    def check_host(self, host: str, port: int, *, resolve: bool = True) -> None:
        """ForbiddenHost unless `host:port` is listed; with `resolve`, also checks what the name resolves to."""
        if host not in self.allowed:
            raise ForbiddenHost(f"file host {host} is not in DONGBO_ALLOWED_FILE_HOSTS")
        ports = self.allowed[host]
        if ports is not None and port not in ports:
            raise ForbiddenHost(f"file host {host} is allowed, but not on port {port}")
        if _is_ip(host) or not resolve:
            return  # an IP literal listed by the operator is trusted as configured
        try:
            addresses = self.resolver(host, port)
        except OSError as exc:
            raise FileSourceUnavailable(f"file host {host} does not resolve: {exc}") from None
        for address in addresses:
            if _is_metadata_address(address, self.metadata_networks) and normalize_host(address) not in self.allowed:
                raise ForbiddenHost(f"file host {host} resolves to the link-local address {address}")

    def check_peer(self, host: str, address: str) -> None:
        """ForbiddenHost when a connection to `host` reached a link-local address nobody listed.

        `address` is the socket's peer address after connect: the one bytes would really go to.
        """
        try:
            host = normalize_host(host)
        except ValueError:
            raise ForbiddenHost(f"file host {host!r} is not a valid host") from None
        if _is_ip(host) and host in self.allowed:
            return  # the operator listed this very address
        if _is_metadata_address(address, self.metadata_networks) and normalize_host(address) not in self.allowed:
            raise ForbiddenHost(f"file host {host} connected to the link-local address {address}")


def literal_url(url: str) -> str:
    """url_file as a URL: a stray `%` is a percent sign, and `#` a character of the file name.

    A fragment is never sent to a server, so a `#` in url_file can only mean the file name holds one.
    (Redirect targets are real URLs and keep their usual meaning.)
    """
    return _STRAY_PERCENT.sub("%25", url.strip()).replace("#", "%23")


def raw_host(url: str) -> str:
    """The host as Python's URL parser reads the original text (for messages and the ambiguity check)."""
    try:
        host = urlsplit(url.strip()).hostname or ""
        return normalize_host(host) if host else "(no host)"
    except ValueError:
        return "(invalid host)"
