"""Secrets stay out of what dongbo shows, and its network exposure is opt-in.

One redaction function for URLs (shared.logs.redact_url), whatever characters the password holds; metrics on
the loopback unless DONGBO_METRICS_HOST says otherwise; the one-stop session ignores environment proxies and
~/.netrc unless DONGBO_ONESTOP_PROXY names a proxy.
"""

from __future__ import annotations

import logging
import socket

import pytest

from cli import common
from shared import logs, observability
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
    return load_settings(onestop_url="https://motcua.example/thainguyen/general/api/",
                         onestop_username="u", onestop_password="secret", **overrides)


def test_the_onestop_session_ignores_environment_proxies(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://evil.example:3128")
    client = OneStopClient.from_settings(_settings())
    try:
        session = client._transport.session
        assert session.trust_env is False and not session.proxies
    finally:
        client.close()


def test_a_configured_proxy_is_the_only_one():
    client = OneStopClient.from_settings(_settings(onestop_proxy="http://proxy.local:3128"))
    try:
        session = client._transport.session
        assert session.trust_env is False
        assert session.proxies == {"http": "http://proxy.local:3128", "https": "http://proxy.local:3128"}
    finally:
        client.close()


def test_missing_onestop_settings_are_named():
    from shared.errors import ConfigError

    with pytest.raises(ConfigError, match="DONGBO_ONESTOP_PASSWORD is not set"):
        load_settings(onestop_url="https://h/", onestop_username="u").onestop()
    with pytest.raises(ConfigError, match="DONGBO_ONESTOP_PROXY"):
        load_settings(onestop_proxy="ftp://x")
