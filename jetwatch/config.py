"""Configuration: TOML file overridden by ``JETWATCH_*`` env vars, validated once into models.

Precedence: environment (``JETWATCH_JET__CLIENT_SECRET``, ``__`` nests) over the TOML file
over defaults. Every problem is reported as ``(key, message)`` in one ``ConfigError`` so the
CLI can print one line per problem and exit 2, never a traceback.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from jetwatch.errors import ConfigError

DEFAULT_BASE_URL = "https://platform-api-service.services.cloud.signiant.com"
CONFIG_ENV = "JETWATCH_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JetSettings(_Section):
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

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")


class LedgerSettings(_Section):
    path: Path = Path("/var/lib/jetwatch/ledger.db")
    retention_days: float = Field(30.0, gt=0)


class HttpSettings(_Section):
    listen: str = "127.0.0.1:9108"

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        from jetwatch.ops import parse_listen

        parse_listen(value)  # raises ValueError with the reason
        return value


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class DaemonSettings(_Section):
    shutdown_timeout_seconds: float = Field(20.0, gt=0)


class FolderSettings(_Section):
    path: Path
    name: str = ""
    job: str = Field(min_length=1)
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
    ledger: LedgerSettings = LedgerSettings()
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    daemon: DaemonSettings = DaemonSettings()
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


def load_settings(path: Path | None, *, require_folders: bool = True) -> Settings:
    """Read, validate and cross-check the configuration, or raise one ``ConfigError``."""
    data = _read_toml(path)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from None
    settings, problems = _resolve_secret(settings)
    problems += cross_check(settings, require_folders=require_folders)
    if problems:
        raise ConfigError(problems)
    return settings


def config_path(cli_value: str | None) -> Path | None:
    """The config file from ``--config`` or ``$JETWATCH_CONFIG``; None means env only."""
    value = cli_value or os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([("--config", f"{path}: no such file")]) from None
    except OSError as exc:
        raise ConfigError([("--config", f"{path}: cannot read: {exc.strerror}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("--config", f"{path}: not valid TOML: {exc}")]) from None


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        key = ""
        for part in error["loc"]:
            key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against config.example.toml)"
        elif error["type"] == "missing":
            message = "required key is missing"
        problems.append((key or "config", message))
    return problems


def _resolve_secret(settings: Settings) -> tuple[Settings, list[tuple[str, str]]]:
    """Read ``client_secret_file`` (relative paths resolve in ``$CREDENTIALS_DIRECTORY``)."""
    jet = settings.jet
    if jet.client_secret_file is None or jet.client_secret is not None:
        return settings, []
    path = jet.client_secret_file
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and creds:
        path = Path(creds) / path
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return settings, [("jet.client_secret_file", f"cannot read {path}: {reason}")]
    if not secret:
        return settings, [("jet.client_secret_file", f"{path} is empty")]
    new_jet = jet.model_copy(update={"client_secret": SecretStr(secret)})
    return settings.model_copy(update={"jet": new_jet}), []


def cross_check(settings: Settings, *, require_folders: bool = True) -> list[tuple[str, str]]:
    """Problems no single field can see: missing credentials, overlapping folders, ..."""
    problems: list[tuple[str, str]] = []
    if not settings.jet.client_id:
        problems.append(("jet.client_id", "required: the Jet API client id"))
    if settings.jet.client_secret is None and settings.jet.client_secret_file is None:
        problems.append(("jet.client_secret", "required: set client_secret or client_secret_file"))
    if settings.jet.poll_max_seconds < settings.jet.poll_min_seconds:
        problems.append(("jet.poll_max_seconds", "must be >= jet.poll_min_seconds"))
    if require_folders and not settings.folders:
        problems.append(("folders", "configure at least one [[folders]] entry"))
    names: set[str] = set()
    for i, folder in enumerate(settings.folders):
        problems += _check_folder(f"folders[{i}]", folder)
        if folder.label in names:
            problems.append((f"folders[{i}].name", f"duplicate folder name {folder.label!r}"))
        names.add(folder.label)
    problems += _check_overlaps(settings.folders)
    return problems


def _check_folder(key: str, folder: FolderSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    path = folder.path
    if not path.is_absolute():
        problems.append((f"{key}.path", f"{path} must be an absolute path"))
    elif path.exists() and not path.is_dir():
        problems.append((f"{key}.path", f"{path} is not a directory"))
    if folder.profile_root is not None and not _inside(path, folder.profile_root):
        problems.append((f"{key}.profile_root", f"must contain the folder path {path}"))
    if folder.post_action == "move" and folder.done_dir is None:
        problems.append((f"{key}.done_dir", 'required when post_action = "move"'))
    for attr in ("done_dir", "failed_dir"):
        target: Path | None = getattr(folder, attr)
        if target is not None and _inside(target, path):
            problems.append(
                (f"{key}.{attr}", f"{target} is inside the watched folder: files would loop")
            )
    if "/" in folder.ready_marker:
        problems.append((f"{key}.ready_marker", "must be a suffix such as '.ready', no '/'"))
    if folder.max_wait_seconds < folder.batch_linger_seconds:
        problems.append((f"{key}.max_wait_seconds", "must be >= batch_linger_seconds"))
    return problems


def _check_overlaps(folders: list[FolderSettings]) -> list[tuple[str, str]]:
    problems = []
    for i, a in enumerate(folders):
        for j, b in enumerate(folders):
            if i < j and (_inside(a.path, b.path) or _inside(b.path, a.path)):
                problems.append(
                    (f"folders[{j}].path", f"{b.path} overlaps folders[{i}].path {a.path}")
                )
    return problems


def _inside(child: Path, parent: Path) -> bool:
    """Lexical containment (no symlink resolution: a share may be unmounted at check time)."""
    c, p = PurePosixPath(os.path.normpath(child)), PurePosixPath(os.path.normpath(parent))
    return c == p or p in c.parents
