"""Every setting of dongbo, read once at start from `DONGBO_*` variables, `.env` and `*_FILE` secrets.

Settings are built in `main()` and handed down; nothing below reads the environment itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from shared.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX = "DONGBO_"

CommaList = Annotated[list[str], NoDecode]


class FileSecretsSource(EnvSettingsSource):
    """Reads `DONGBO_<NAME>_FILE`: the value of a setting is the content of that file (Docker secrets)."""

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            path = os.environ.get(f"{PREFIX}{name.upper()}_FILE")
            if not path:
                continue
            try:
                values[name] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{PREFIX}{name.upper()}_FILE: cannot read {path}: {exc.strerror}") from None
        return values


class OneStopAccess(BaseModel):
    """What a client of the one-stop system needs, all of it given: `Settings.onestop()` builds it or says what
    is missing."""

    model_config = ConfigDict(frozen=True)

    url: str
    username: str
    password: SecretStr
    verify_tls: bool = True
    proxy: str | None = None


class Settings(BaseSettings):
    """The whole configuration. What a service cannot run without is checked by the typed accessors
    (`onestop()`, `unit_codes()`, `required_file_hosts()`), which raise ConfigError naming the setting."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=".env", extra="ignore", validate_default=True)

    # The one-stop system (the document's base URL ends in /thainguyen/general/api/).
    onestop_url: str | None = None
    onestop_username: str | None = None
    onestop_password: SecretStr | None = None
    onestop_verify_tls: bool = True
    # The one proxy the one-stop client uses; without it, HTTP(S)_PROXY, NO_PROXY and ~/.netrc are ignored.
    onestop_proxy: str | None = None
    units: CommaList = Field(default_factory=list)

    # The three stores.
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F")
    database_url: SecretStr = SecretStr("sqlite:///dongbo.db")
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = "minioadmin"
    s3_secret_key: SecretStr = SecretStr("minioadmin")
    s3_bucket: str = "dongbo"
    s3_secure: bool = False
    s3_region: str | None = None

    # Input limits (see docs/deployment.md, "Security").
    max_file_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_files_per_dossier: int = Field(default=500, gt=0)
    max_sync_response_bytes: int = Field(default=4 * 1024**3, gt=0)
    # One dossier as the one-stop system sends it (docs/deployment.md, "Dossiers"): the longest text field,
    # and the whole item, kept well under the broker's 16 MiB message limit.
    max_field_chars: int = Field(default=4000, gt=0)
    max_item_bytes: int = Field(default=4 * 1024**2, gt=0, le=12 * 1024**2)
    allowed_file_hosts: CommaList = Field(default_factory=list)

    # Timeouts and retries of outbound HTTP.
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    file_deadline: float | None = Field(default=None, gt=0)  # one file's whole transfer; None: scaled to max_file_bytes
    http_retries: int = Field(default=4, ge=0)

    # Broker topology and delivery.
    queue_prefix: str = "dongbo"
    retry_delays: CommaList = Field(default_factory=lambda: ["5", "30", "120", "600", "1800"])
    delivery_limit: int = Field(default=20, gt=0)
    heartbeat: int = Field(default=60, ge=0)

    # Service tuning.
    poll_interval: float = Field(default=300.0, gt=0)
    inflight_timeout: float = Field(default=3600.0, gt=0)
    download_concurrency: int = Field(default=4, gt=0)
    part_size: int = Field(default=8 * 1024**2, ge=5 * 1024**2)
    index_batch_size: int = Field(default=200, gt=0)
    ack_batch_size: int = Field(default=100, gt=0)
    ack_batch_seconds: float = Field(default=2.0, gt=0)
    # File reports (one call per dossier) the acker has in flight at once; within its HTTP pool of 32.
    report_concurrency: int = Field(default=8, gt=0, le=24)
    catalog_interval: float = Field(default=86400.0, gt=0)  # seconds between copies of the document-type catalog
    max_correction_bytes: int = Field(default=20 * 1024**2, gt=0)  # the one-stop system takes at most 20 MiB

    # Operations.
    log_level: str = "INFO"
    log_json: bool | None = None
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # Loopback by default: metrics and health are for the host's own scraper and health check.
    metrics_host: str = "127.0.0.1"

    # The web application (`dongbo web`). Secure cookies: None = when the request came over HTTPS.
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, gt=0, le=65535)
    web_secure_cookies: bool | None = None
    web_trusted_proxies: CommaList = Field(default_factory=list)

    @field_validator("units", "allowed_file_hosts", "retry_delays", "web_trusted_proxies", mode="before")
    @classmethod
    def split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("retry_delays")
    @classmethod
    def delays_are_numbers(cls, value: list[str]) -> list[str]:
        for part in value:
            try:
                if float(part) <= 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"retry delays must be positive seconds, got {part!r}") from None
        return value

    @field_validator("onestop_proxy")
    @classmethod
    def proxy_is_http(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
            raise ValueError("must be an http://, https:// or socks5:// URL")
        return value

    @field_validator("onestop_url")
    @classmethod
    def url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("log_level")
    @classmethod
    def level_is_known(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError(f"unknown log level {value!r}")
        return value.upper()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, FileSecretsSource(settings_cls), env_settings, dotenv_settings

    # -- derived values ---------------------------------------------------------------------------

    @property
    def file_hosts(self) -> frozenset[str]:
        """Hosts attachments may come from: the setting, or else the one-stop URL's own host."""
        if self.allowed_file_hosts:
            return frozenset(host.lower() for host in self.allowed_file_hosts)
        hostname = urlsplit(self.onestop_url).hostname if self.onestop_url else None
        return frozenset({hostname.lower()}) if hostname else frozenset()

    @property
    def retry_delay_seconds(self) -> list[float]:
        return [float(part) for part in self.retry_delays]

    @property
    def max_attempts(self) -> int:
        """First try plus one retry per delay step."""
        return len(self.retry_delays) + 1

    def onestop(self) -> OneStopAccess:
        """The one-stop system's address and account; ConfigError names the first setting not given."""
        url, username, password = self.onestop_url, self.onestop_username, self.onestop_password
        if not url:
            raise _missing("onestop_url")
        if not username:
            raise _missing("onestop_username")
        if password is None or not password.get_secret_value():
            raise _missing("onestop_password")
        return OneStopAccess(url=url, username=username, password=password,
                             verify_tls=self.onestop_verify_tls, proxy=self.onestop_proxy)

    def unit_codes(self) -> list[str]:
        """The units to poll; ConfigError when none is given."""
        if not self.units:
            raise _missing("units")
        return list(self.units)

    def required_file_hosts(self) -> frozenset[str]:
        """`file_hosts`, which the downloader cannot run without (every attachment would be refused)."""
        if not self.file_hosts:
            raise _missing("allowed_file_hosts")
        return self.file_hosts

    def require(self, *names: str) -> None:
        """Stops a service that needs a setting nobody gave. Prefer the typed accessors above."""
        for name in names:
            value = getattr(self, name)
            if value is None or value == [] or value == "":
                raise ConfigError(f"{PREFIX}{name.upper()} is not set")


def _missing(name: str) -> ConfigError:
    return ConfigError(f"{PREFIX}{name.upper()} is not set")


def load_settings(**overrides: Any) -> Settings:
    """Builds the settings or raises ConfigError with one line naming the bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = f"{PREFIX}{str(error['loc'][0]).upper()}" if error.get("loc") else "settings"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}") from None
