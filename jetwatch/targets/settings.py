"""Configuration sections of the Integration Manager and JetStream targets (for config.py).

They follow config.py's conventions: unknown keys are errors, units in names, secrets as
``SecretStr`` or a ``*_file`` read with :func:`read_secret` (relative paths resolve in
systemd's ``$CREDENTIALS_DIRECTORY``).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from jetwatch.errors import ConfigError
from jetwatch.targets.im_variables import DEFAULT_VARIABLES, VariableSource, template_problem


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_secret(secret: SecretStr | None, secret_file: Path | None, key: str) -> None:
    if secret is None and secret_file is None:
        raise ValueError(f"set {key} or {key}_file")


class IntegrationManagerSettings(_Section):
    """``[integration_manager]``: where the API is, who logs in, which job config runs."""

    base_url: str
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None
    job_config: str = Field(min_length=1, description="id of the job config to run")
    variables: dict[str, VariableSource] = Field(default_factory=lambda: dict(DEFAULT_VARIABLES))
    variables_key: str = Field("variables", min_length=1)
    request_timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    max_retries: int = Field(5, ge=0)
    rate_limit_per_second: float = Field(20.0, ge=0)
    token_margin_seconds: float = Field(300.0, ge=0)
    poll_min_seconds: float = Field(1.0, gt=0)
    poll_max_seconds: float = Field(30.0, gt=0)
    run_timeout_seconds: float = Field(86400.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @field_validator("variables")
    @classmethod
    def _template(cls, value: dict[str, VariableSource]) -> dict[str, VariableSource]:
        problem = template_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_secret(self.password, self.password_file, "password")
        if self.poll_max_seconds < self.poll_min_seconds:
            raise ValueError("poll_max_seconds must be >= poll_min_seconds")
        return self


class JetStreamSettings(_Section):
    """``[jetstream]``: the local JetStream server, its user, and the destination to send to."""

    host: str = Field("localhost", min_length=1)
    port: int = Field(8886, ge=1, le=65535)
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None
    destination_host: str = Field(min_length=1)
    destination_port: int = Field(8886, ge=1, le=65535)
    destination_root: str = Field("/", description="path prefix of the files on the destination")
    max_resumes: int = Field(3, ge=0)
    manifest_poll_seconds: float = Field(0.5, gt=0)
    manifest_timeout_seconds: float = Field(600.0, gt=0)
    call_timeout_seconds: float = Field(60.0, gt=0)
    poll_min_seconds: float = Field(1.0, gt=0)
    poll_max_seconds: float = Field(30.0, gt=0)
    transfer_timeout_seconds: float = Field(86400.0, gt=0)

    @field_validator("destination_root")
    @classmethod
    def _root(cls, value: str) -> str:
        root = PurePosixPath(value)
        if not root.is_absolute() or ".." in root.parts:
            raise ValueError(f"{value!r} must be an absolute posix path without '..'")
        return root.as_posix()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_secret(self.password, self.password_file, "password")
        if self.poll_max_seconds < self.poll_min_seconds:
            raise ValueError("poll_max_seconds must be >= poll_min_seconds")
        return self


def read_secret(secret: SecretStr | None, secret_file: Path | None, key: str) -> SecretStr:
    """The secret itself, or the stripped content of its file; ConfigError naming ``key``."""
    if secret is not None:
        return secret
    if secret_file is None:
        raise ConfigError([(key, f"required: set {key} or {key}_file")])
    path = secret_file
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and creds:
        path = Path(creds) / path
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([(f"{key}_file", f"cannot read {path}: {reason}")]) from None
    if not value:
        raise ConfigError([(f"{key}_file", f"{path} is empty")])
    return SecretStr(value)
