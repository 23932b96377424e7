"""Secrets stay out of what dongbo shows, and its network exposure is opt-in.

One redaction function for URLs (shared.logs.redact_url), whatever characters the password holds; metrics on
the loopback unless DONGBO_METRICS_HOST says otherwise; the one-stop client ignores environment proxies and
~/.netrc, and goes through DONGBO_ONESTOP_PROXY only when it names a proxy.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli import common
from harness.services import free_port
from shared import logs, observability
from shared.errors import OneStopUnavailable
from shared.logs import RedactingFilter, redact, redact_url, url_password
from shared.onestop import OneStopClient
from shared.service import register_secrets
from shared.settings import load_settings


@pytest.fixture(autouse=True)
def _no_registered_secrets(monkeypatch):
    """Secrets registered by other tests in this process (such as `guest`) would blank more than the password."""
    monkeypatch.setattr(logs, "_secrets", set())


PASSWORDS = ["p@ss@word", "pa/ss@w#rd", "p:ss@@w?rd", "simple-secret", "%40enc%2Foded"]


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("template", [
    "amqp://guest:{}@127.0.0.1:5672/%2F",
    "postgresql://dongbo:{}@db.example.org:5432/dongbo",
    "postgresql://dongbo:{}@[::1]:5432/dongbo?sslmode=require",
    "http://proxy-user:{}@proxy.local:3128",
])
def test_redact_url_hides_the_whole_password(template, password):
    url = template.format(password)
    shown = redact_url(url)
    assert password not in shown
    for piece in password.replace("/", "@").replace("#", "@").replace("?", "@").split("@"):
        if len(piece) >= 3:
            assert piece not in shown, f"{piece!r} of the password leaks in {shown}"
    assert ":***@" in shown
    user = template.split("//")[1].split(":")[0]
    assert f"//{user}:***@" in shown, "the user name stays: it helps and is not secret"
    assert url_password(url) == password


def test_urls_without_a_password_are_unchanged():
    for url in ("amqp://guest@127.0.0.1/", "sqlite:///dongbo.db", "https://motcua.example/api/", "http://h/a@b"):
        assert redact_url(url) == url


def test_the_cli_and_the_logs_use_the_same_function():
    assert common.redact_url is logs.redact_url and common.one_line is logs.one_line


def test_a_url_inside_a_message_is_redacted():
    line = redact("cannot connect to amqp://guest:p@ss@word@rabbit:5672/%2F: refused")
    assert "p@ss" not in line and "ss@word" not in line and "amqp://guest:***@rabbit:5672/%2F" in line


def test_registered_url_passwords_never_reach_a_log_line():
    settings = load_settings(amqp_url="amqp://guest:p@ss@word@127.0.0.1:5672/%2F",
                             database_url="postgresql://u:s3cr%40t@db/x")
    register_secrets(settings)
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "word was %s and %s", ("p@ss@word", "s3cr@t"), None)
    RedactingFilter().filter(record)
    assert "p@ss@word" not in record.getMessage() and "s3cr@t" not in record.getMessage()


def test_metrics_bind_the_loopback_unless_configured():
    assert load_settings().metrics_host == "127.0.0.1"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = observability.serve(port, lambda: (True, "ok"))
    assert server is not None
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()


def _settings(**overrides):
    options = dict(onestop_url="https://motcua.example/thainguyen/general/api/", onestop_username="u",
                   onestop_password="secret")
    return load_settings(**{**options, **overrides})


class RecordingProxy:
    """A forward proxy on loopback that writes down what reaches it and answers 503 to everything."""

    def __init__(self):
        self.seen: list[tuple[str, str | None]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def _refuse(self):
                seen.append((self.requestline, self.headers.get("Proxy-Authorization")))
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_CONNECT = _refuse

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recording_proxy():
    proxy = RecordingProxy()
    yield proxy
    proxy.close()


def _login_through(settings) -> None:
    client = OneStopClient.from_settings(settings)
    try:
        with pytest.raises(OneStopUnavailable):
            client.login()
    finally:
        client.close()


def test_the_onestop_client_ignores_environment_proxies(monkeypatch, recording_proxy):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, recording_proxy.url)
    nowhere = f"http://127.0.0.1:{free_port()}/thainguyen/general/api/"
    _login_through(_settings(onestop_url=nowhere, http_retries=0))
    assert recording_proxy.seen == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_configured_proxy_is_the_only_one(monkeypatch, recording_proxy, scheme):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing there: a request sent there would fail
    proxy = recording_proxy.url.replace("//", "//proxy-user:p%40ss@")
    _login_through(_settings(onestop_url=f"{scheme}://motcua.example/thainguyen/general/api/",
                             onestop_proxy=proxy, http_retries=0))
    expected = ("POST http://motcua.example/thainguyen/general/api/dangnhap" if scheme == "http"
                else "CONNECT motcua.example:443")  # https goes through a tunnel: the proxy sees only the host
    credentials = base64.b64encode(b"proxy-user:p@ss").decode()
    assert [(line.rsplit(" ", 1)[0], auth) for line, auth in recording_proxy.seen] == [
        (expected, f"Basic {credentials}")]


class RecordingSocksProxy:
    """A SOCKS5 server on loopback (RFC 1928/1929) that writes down who logged in and where to, and refuses."""

    def __init__(self):
        self.seen: list[tuple[str, str, str, int]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection, contextlib.suppress(OSError, ValueError):
                self._answer(connection.makefile("rwb", buffering=0))

    def _answer(self, stream):
        def take(count: int) -> bytes:
            data = stream.read(count)
            if len(data) != count:
                raise ValueError("short read")
            return data

        _version, methods = take(2)
        user = password = ""
        if 2 in take(methods):  # the user/password method
            stream.write(b"\x05\x02")
            take(1)
            user = take(take(1)[0]).decode()
            password = take(take(1)[0]).decode()
            stream.write(b"\x01\x00")
        else:
            stream.write(b"\x05\x00")
        _version, _command, _reserved, kind = take(4)
        host = take(take(1)[0]).decode() if kind == 3 else socket.inet_ntoa(take(4))
        port = int.from_bytes(take(2), "big")
        self.seen.append((user, password, host, port))
        stream.write(b"\x05\x05\x00\x01" + bytes(6))  # connection refused

    def close(self):
        self.listener.close()


@pytest.mark.parametrize(("scheme", "target"), [("socks5h", "motcua.example"), ("socks5", "192.0.2.7")])
def test_a_socks5_proxy_is_used_with_its_login(monkeypatch, scheme, target):
    monkeypatch.setenv("ALL_PROXY", "socks5h://127.0.0.1:9")  # nothing there: a request sent there would fail
    proxy = RecordingSocksProxy()
    try:
        _login_through(_settings(onestop_url=f"https://{target}/thainguyen/general/api/",
                                 onestop_proxy=f"{scheme}://proxy-user:p%40ss@{proxy.url}", http_retries=0))
        assert proxy.seen == [("proxy-user", "p@ss", target, 443)]  # socks5h: the proxy resolves the name
    finally:
        proxy.close()


def test_missing_onestop_settings_are_named():
    from shared.errors import ConfigError

    with pytest.raises(ConfigError, match="DONGBO_ONESTOP_PASSWORD is not set"):
        load_settings(onestop_url="https://h/", onestop_username="u").onestop()
    with pytest.raises(ConfigError, match="DONGBO_ONESTOP_PROXY"):
        load_settings(onestop_proxy="ftp://x")
