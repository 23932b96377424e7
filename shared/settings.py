"""Every setting of dongbo, read once at start from `DONGBO_*` variables, `.env` and `*_FILE` secrets.

Settings are built in `main()` and handed down; nothing below reads the environment itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
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


class Settings(BaseSettings):
    """The whole configuration. Required values are checked per service by `require()`."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=".env", extra="ignore", validate_default=True)

    # The one-stop system (the document's base URL ends in /thainguyen/general/api/).
    onestop_url: str | None = None
    onestop_username: str | None = None
    onestop_password: SecretStr | None = None
    onestop_verify_tls: bool = True
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

    # Input limits (see README, "Security").
    max_file_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_files_per_dossier: int = Field(default=500, gt=0)
    max_sync_response_bytes: int = Field(default=4 * 1024**3, gt=0)
    # One dossier as the one-stop system sends it (docs/hostile-input-dossiers.md): the longest text field,
    # and the whole item, kept well under the broker's 16 MiB message limit.
    max_field_chars: int = Field(default=4000, gt=0)
    max_item_bytes: int = Field(default=4 * 1024**2, gt=0, le=12 * 1024**2)
    allowed_file_hosts: CommaList = Field(default_factory=list)

    # Timeouts and retries of outbound HTTP.
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
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
    catalog_interval: float = Field(default=86400.0, gt=0)  # seconds between copies of the document-type catalog
    max_correction_bytes: int = Field(default=20 * 1024**2, gt=0)  # the one-stop system takes at most 20 MiB

    # Operations.
    log_level: str = "INFO"
    log_json: bool | None = None
    metrics_port: int = Field(default=0, ge=0, le=65535)

    @field_validator("units", "allowed_file_hosts", "retry_delays", mode="before")
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
        if self.onestop_url:
            return frozenset({urlsplit(self.onestop_url).hostname.lower()})
        return frozenset()

    @property
    def retry_delay_seconds(self) -> list[float]:
        return [float(part) for part in self.retry_delays]

    @property
    def max_attempts(self) -> int:
        """First try plus one retry per delay step."""
        return len(self.retry_delays) + 1

    def require(self, *names: str) -> None:
        """Stops a service that needs a setting nobody gave."""
        for name in names:
            value = getattr(self, name)
            if value is None or value == [] or value == "":
                raise ConfigError(f"{PREFIX}{name.upper()} is not set")


def load_settings(**overrides: Any) -> Settings:
    """Builds the settings or raises ConfigError with one line naming the bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = f"{PREFIX}{str(error['loc'][0]).upper()}" if error.get("loc") else "settings"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}") from None
