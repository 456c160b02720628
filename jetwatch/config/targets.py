"""Configuration sections of the Integration Manager and JetStream targets, and the IM template.

They follow config.py's conventions: unknown keys are errors, units in names, secrets as
``SecretStr`` or a ``*_file`` read with :func:`read_secret` (relative paths resolve in
systemd's ``$CREDENTIALS_DIRECTORY``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class VariableSource(StrEnum):
    """What one job variable carries."""

    FILES_JSON = "files_json"  # JSON array of absolute local paths
    FILES_LINES = "files_lines"  # absolute local paths joined by newlines
    RELPATHS_JSON = "relpaths_json"  # JSON array of paths relative to the watched folder
    RELPATHS_LINES = "relpaths_lines"  # relative paths joined by newlines
    COUNT = "count"  # number of files
    TOTAL_BYTES = "total_bytes"  # sum of the files' sizes
    BATCH = "batch"  # batch_token(): same files, same token


# Sources that tell one batch from another; a template needs one so that in-doubt resolution
# cannot adopt a run of other files (count and total_bytes alone would).
IDENTIFYING_SOURCES = frozenset(
    {
        VariableSource.BATCH,
        VariableSource.FILES_JSON,
        VariableSource.FILES_LINES,
        VariableSource.RELPATHS_JSON,
        VariableSource.RELPATHS_LINES,
    }
)

DEFAULT_VARIABLES: Mapping[str, VariableSource] = MappingProxyType(
    {
        "JETWATCH_FILES": VariableSource.FILES_LINES,
        "JETWATCH_FILE_COUNT": VariableSource.COUNT,
        "JETWATCH_BATCH": VariableSource.BATCH,
    }
)


def template_problem(template: Mapping[str, VariableSource]) -> str:
    """Why a template cannot be used ("" when it can)."""
    if not template:
        return "name at least one variable"
    if not all(name.strip() for name in template):
        return "variable names must not be empty"
    if not IDENTIFYING_SOURCES & {VariableSource(s) for s in template.values()}:
        return "one variable must carry batch or a file list (files_* or relpaths_*)"
    return ""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def http_url(value: str) -> str:
    """``value`` without its trailing '/'; ValueError when it is not an http(s) URL."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


def proxy_value(value: str) -> str:
    """``proxy``: "" (use HTTPS_PROXY/NO_PROXY), "direct", or an http(s) proxy URL."""
    value = value.strip()
    if value in ("", "direct"):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Never echo the value: a proxy URL may carry a password.
        raise ValueError('must be "", "direct" or an http(s)://host:port proxy URL')
    return value


def ca_file_value(value: Path | None) -> Path | None:
    """``ca_file``: a PEM bundle that exists (trusted besides the system store)."""
    if value is not None and not value.is_file():
        raise ValueError(f"{value} is not a file")
    return value


class NetworkKeys(BaseModel):
    """``proxy`` and ``ca_file``, shared by the sections of the HTTP APIs (Jet, IM)."""

    proxy: str = ""
    ca_file: Path | None = None

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str) -> str:
        return proxy_value(value)

    @field_validator("ca_file", mode="before")
    @classmethod
    def _empty_ca(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, value: Path | None) -> Path | None:
        return ca_file_value(value)


class _TargetSection(_Section):
    """What both target sections have: a password (or its file) and polling bounds."""

    password: SecretStr | None = None
    password_file: Path | None = None
    poll_min_seconds: float = Field(1.0, gt=0)
    poll_max_seconds: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.password is None and self.password_file is None:
            raise ValueError("set password or password_file")
        if self.poll_max_seconds < self.poll_min_seconds:
            raise ValueError("poll_max_seconds must be >= poll_min_seconds")
        return self


class IntegrationManagerSettings(_TargetSection, NetworkKeys):
    """``[integration_manager]``: where the API is, who logs in, which job config runs."""

    base_url: str
    username: str = Field(min_length=1)
    # Folders may name their own job config in ``job``; this one is for those that do not.
    job_config: str | None = Field(None, min_length=1, description="id of the job config to run")
    variables: dict[str, VariableSource] = Field(default_factory=lambda: dict(DEFAULT_VARIABLES))
    variables_key: str = Field("variables", min_length=1)
    request_timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    max_retries: int = Field(5, ge=0)
    rate_limit_per_second: float = Field(20.0, ge=0)
    token_margin_seconds: float = Field(300.0, ge=0)
    run_timeout_seconds: float = Field(86400.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("variables")
    @classmethod
    def _template(cls, value: dict[str, VariableSource]) -> dict[str, VariableSource]:
        problem = template_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class JetStreamSettings(_TargetSection):
    """``[jetstream]``: the local JetStream server, its user, and the destination to send to."""

    host: str = Field("localhost", min_length=1)
    port: int = Field(8886, ge=1, le=65535)
    username: str = Field(min_length=1)
    destination_host: str = Field(min_length=1)
    destination_port: int = Field(8886, ge=1, le=65535)
    destination_root: str = Field("/", description="path prefix of the files on the destination")
    max_resumes: int = Field(3, ge=0)
    manifest_poll_seconds: float = Field(0.5, gt=0)
    manifest_timeout_seconds: float = Field(600.0, gt=0)
    call_timeout_seconds: float = Field(60.0, gt=0)
    transfer_timeout_seconds: float = Field(86400.0, gt=0)

    @field_validator("destination_root")
    @classmethod
    def _root(cls, value: str) -> str:
        root = PurePosixPath(value)
        if not root.is_absolute() or ".." in root.parts:
            raise ValueError(f"{value!r} must be an absolute posix path without '..'")
        return root.as_posix()
