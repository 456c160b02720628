"""The configuration's models: one frozen section per TOML table, every key with its unit.

Built and validated by :func:`jetwatch.config.load.load_settings`. Each folder names its
target (``jet``, ``integration-manager``, ``jetstream``); only the sections and secrets of
the targets in use are required.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from jetwatch.config.targets import (
    IntegrationManagerSettings,
    JetStreamSettings,
    NetworkKeys,
    http_url,
)

DEFAULT_BASE_URL = "https://platform-api-service.services.cloud.signiant.com"
# IPv6 hosts need brackets (the last colon separates the port); "%" allows a zone id.
_LISTEN = re.compile(r"^(?:\[(?P<ipv6>[\w:.%]+)\]|(?P<host>[^\s:\[\]]+)):(?P<port>\d{1,5})$")


def parse_listen(listen: str) -> tuple[str, int] | None:
    """Split "host:port" or "[v6]:port" into (host, port); "" means disabled (None)."""
    if listen == "":
        return None
    match = _LISTEN.match(listen)
    port = int(match["port"]) if match else -1
    if match is None or port > 65535:
        raise ValueError(
            f"invalid listen address {listen!r}: expected host:port such as "
            "127.0.0.1:9108 or [::1]:9108, or an empty string to disable"
        )
    return (match["ipv6"] or match["host"]), port


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JetSettings(_Section, NetworkKeys):
    base_url: str = DEFAULT_BASE_URL
    client_id: str = ""
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    request_timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    max_retries: int = Field(5, ge=0)
    rate_limit_per_second: float = Field(20.0, ge=0)
    poll_min_seconds: float = Field(1.0, gt=0)
    poll_max_seconds: float = Field(30.0, gt=0)
    max_concurrent_polls: int = Field(8, ge=1)
    job_recheck_seconds: float = Field(30.0, gt=0)
    delivery_timeout_seconds: float = Field(86400.0, gt=0)
    # In doubt (a POST whose answer was lost): how long a delivery may take to show as in
    # progress, and the longest wait for one to end before the batch is sent again anyway.
    in_doubt_grace_seconds: float = Field(10.0, ge=0)
    in_doubt_max_wait_seconds: float = Field(3600.0, gt=0)
    # A delivery showing no change this long (the job running) and no transfer in progress
    # is stalled: it is delivered again (Jet skips what arrived).
    stall_seconds: float = Field(1800.0, gt=0)

    @field_validator("client_secret", "client_secret_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # An empty string (a placeholder cleared by hand, an empty env var) means "not set".
        return None if value == "" else value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)


DEFAULT_LEDGER_PATH = Path("/var/lib/jetwatch/ledger.db")


def postgres_url(value: str) -> str:
    """A ``postgresql://`` URL naming a database ("" = none); ValueError naming no secret."""
    if not value:
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("not a valid URL: expected postgresql://user@host:5432/dbname") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"scheme {parts.scheme!r} is not postgresql://")
    if not parts.path.strip("/"):
        raise ValueError("the URL names no database: postgresql://user@host:5432/dbname")
    if parts.password:
        raise ValueError("keep the password out of the URL: use password_file (or password)")
    return value


class LedgerSettings(_Section):
    """SQLite (``path``, one host) or PostgreSQL (``url``, shared by a fleet): not both."""

    path: Path = DEFAULT_LEDGER_PATH
    url: str = ""
    password: SecretStr | None = None
    password_file: Path | None = None
    lease_seconds: float = Field(15.0, ge=2, le=3600)
    retention_days: float = Field(30.0, gt=0)

    @field_validator("password", "password_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return postgres_url(value)

    @model_validator(mode="after")
    def _one_backend(self) -> LedgerSettings:
        if self.url and "path" in self.model_fields_set:
            raise ValueError("set either path (SQLite) or url (PostgreSQL), not both")
        return self

    @property
    def shared(self) -> bool:
        """A PostgreSQL ledger, shared by every daemon configured with it."""
        return bool(self.url)


class HttpSettings(_Section):
    listen: str = "127.0.0.1:9108"
    actions: bool = False  # the console's retry / re-check buttons; they need the token
    token: SecretStr | None = None
    token_file: Path | None = None

    @field_validator("token", "token_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)  # raises ValueError with the reason
        return value


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    file_lines_per_minute: int = Field(1000, ge=0)  # file_delivered lines; above: summaries

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


NotifyEventName = Literal["failed", "held", "recovered", "down"]
NOTIFY_EVENTS: tuple[NotifyEventName, ...] = ("failed", "held", "recovered", "down")


class NotifySettings(_Section):
    webhook_url: SecretStr | None = None  # a secret: chat webhooks carry the key in the path
    webhook_url_file: Path | None = None
    events: list[NotifyEventName] = Field(default_factory=lambda: list(NOTIFY_EVENTS))
    timeout_seconds: float = Field(10.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    queue_size: int = Field(100, ge=1)

    @field_validator("webhook_url", "webhook_url_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class DaemonSettings(_Section):
    shutdown_timeout_seconds: float = Field(20.0, gt=0)


TargetKind = Literal["jet", "integration-manager", "jetstream"]
DEFAULT_TARGET: TargetKind = "jet"
# The config section each target reads its connection and credentials from.
TARGET_SECTIONS: dict[str, str] = {
    "jet": "jet",
    "integration-manager": "integration_manager",
    "jetstream": "jetstream",
}


class FolderSettings(_Section):
    path: Path
    name: str = ""
    target: TargetKind = DEFAULT_TARGET
    # jet: job id or exact name (required); integration-manager: job config id (default
    # [integration_manager] job_config); jetstream: not used.
    job: str = ""
    profile_root: Path | None = None
    settle_seconds: float = Field(5.0, ge=0)
    max_files: int = Field(1000, ge=1)
    max_bytes: int = Field(0, ge=0)
    batch_linger_seconds: float = Field(0.5, ge=0)
    max_wait_seconds: float = Field(5.0, ge=0)
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    post_action: Literal["keep", "move", "delete"] = "keep"
    done_dir: Path | None = None
    failed_dir: Path | None = None
    ready_marker: str = ""
    growing: bool = False
    poll: Literal["auto", "events", "scan"] = "auto"
    scan_interval_seconds: float = Field(10.0, gt=0)
    reconcile_seconds: float = Field(600.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    retry_backoff_seconds: float = Field(5.0, ge=0)

    @field_validator("done_dir", "failed_dir", "profile_root", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def label(self) -> str:
        """The folder's name in logs, metrics and the ledger."""
        return self.name or str(self.path)

    @property
    def root(self) -> Path:
        """The local path of the job's source profile root."""
        return self.profile_root or self.path


class Settings(BaseSettings):
    """The whole configuration; build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="JETWATCH_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    jet: JetSettings = JetSettings()
    integration_manager: IntegrationManagerSettings | None = None
    jetstream: JetStreamSettings | None = None
    ledger: LedgerSettings = LedgerSettings()
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    daemon: DaemonSettings = DaemonSettings()
    notify: NotifySettings = NotifySettings()
    folders: list[FolderSettings] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; env must win over it, so env comes first.
        return (env_settings, init_settings)
