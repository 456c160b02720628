"""Configuration: TOML file overridden by ``JETWATCH_*`` env vars, validated once into models.

Precedence: environment (``JETWATCH_JET__CLIENT_SECRET``, ``__`` nests) over the TOML file
over defaults. Every problem is reported as ``(key, message)`` in one ``ConfigError`` so the
CLI can print one line per problem and exit 2, never a traceback. Each folder names its
target (``jet``, ``integration-manager``, ``jetstream``); only the sections and secrets of
the targets in use are required.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from jetwatch.config_checks import folder_problems
from jetwatch.errors import ConfigError
from jetwatch.secret_files import read_secret_file
from jetwatch.targets.settings import IntegrationManagerSettings, JetStreamSettings, http_url

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

    @field_validator("client_secret", "client_secret_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # An empty string (a placeholder cleared by hand, an empty env var) means "not set".
        return None if value == "" else value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)


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

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class DaemonSettings(_Section):
    shutdown_timeout_seconds: float = Field(20.0, gt=0)


TargetKind = Literal["jet", "integration-manager", "jetstream"]
# The config section each target reads its connection and credentials from.
TARGET_SECTIONS: dict[str, str] = {
    "jet": "jet",
    "integration-manager": "integration_manager",
    "jetstream": "jetstream",
}


class FolderSettings(_Section):
    path: Path
    name: str = ""
    target: TargetKind = "jet"
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


Problem = tuple[str, str]
# The secret key of each section that has one; ``<key>_file`` is its file variant.
SECRET_KEYS = {"jet": "client_secret", "integration_manager": "password", "jetstream": "password"}


def load_settings(
    path: Path | None,
    *,
    require_folders: bool = True,
    require_credentials: bool = True,
    require_jet: bool = False,
) -> Settings:
    """Read, validate and cross-check the configuration, or raise one ``ConfigError``.

    ``require_credentials=False`` is for commands that never log in (``status``,
    ``ledger``): they must work for an operator who cannot read the secret. Credentials are
    read for the sections the folders use, and for [jet] when ``require_jet`` (``jobs``).
    """
    data = _prefer_env_secret(_read_toml(path))
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        # Report what the other fields' cross-checks find too: one round of fixes, not many.
        found = _problems(exc) + _partial_folder_checks(data)
        raise ConfigError(list(dict.fromkeys(found))) from None
    used = sections_in_use(settings, require_jet=require_jet)
    settings, problems = _resolve_secrets(settings, path, used if require_credentials else set())
    problems += cross_check(
        settings,
        require_folders=require_folders,
        require_credentials=require_credentials,
        require_jet=require_jet,
    )
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return settings


def sections_in_use(settings: Settings, *, require_jet: bool = False) -> set[str]:
    """The target sections the folders need ([jet] also with no folders: its default target)."""
    used = {TARGET_SECTIONS[f.target] for f in settings.folders}
    if require_jet or not settings.folders:
        used.add("jet")
    return used


def config_path(cli_value: str | None) -> Path | None:
    """The config file from ``--config`` or ``$JETWATCH_CONFIG``; None means env only."""
    value = cli_value or os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


def _config_key(path: Path) -> str:
    env = os.environ.get(CONFIG_ENV)
    return f"--config (${CONFIG_ENV})" if env and Path(env) == path else "--config"


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    key = _config_key(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([(key, f"{path}: no such file")]) from None
    except OSError as exc:
        raise ConfigError([(key, f"{path}: cannot read: {exc.strerror}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(key, f"{path}: not valid TOML: {exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([(key, f"{path}: not valid TOML: the file is not UTF-8")]) from None


def _env_name(key: str) -> str:
    return "JETWATCH_" + key.replace(".", "__").upper()


def _env_value(key: str) -> str:
    """The non-empty env var that sets ``key`` (pydantic-settings ignores case), or ""."""
    wanted = _env_name(key).lower()
    return next((v for k, v in os.environ.items() if k.lower() == wanted and v), "")


def _prefer_env_secret(data: dict[str, Any]) -> dict[str, Any]:
    """Env over TOML for each secret as a whole, whichever of its two keys each one uses.

    Otherwise a ``client_secret`` placeholder left in the file would silently beat the
    ``JETWATCH_JET__CLIENT_SECRET_FILE`` that the systemd unit and compose file set.
    """
    for section, key in SECRET_KEYS.items():
        body = data.get(section)
        keys = (key, f"{key}_file")
        if isinstance(body, dict) and any(_env_value(f"{section}.{k}") for k in keys):
            data = {**data, section: {k: v for k, v in body.items() if k not in keys}}
    return data


def _problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors():
        key = ""
        for part in error["loc"]:
            key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against config.example.toml)"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif key == "folders" and error["type"] == "list_type":
            message = "must be a list of tables: write [[folders]] (double brackets) per folder"
        if key and _env_value(key):
            message += f" (set by ${_env_name(key)})"
        problems.append((key or "config", message))
    return problems


def _partial_folder_checks(data: dict[str, Any]) -> list[Problem]:
    """Cross-checks of the folders that are valid on their own, when others are not."""
    raw = data.get("folders")
    if not isinstance(raw, list):
        return []
    valid: list[tuple[int, FolderSettings]] = []
    for i, item in enumerate(raw):
        folder = _folder_without_bad_keys(item)
        if folder is not None:
            valid.append((i, folder))
    return folder_problems(valid)


def _folder_without_bad_keys(item: object) -> FolderSettings | None:
    """The folder with its unknown or invalid keys left out (already reported), if it validates."""
    if not isinstance(item, dict):
        return None
    try:
        return FolderSettings.model_validate(item)
    except ValidationError as exc:
        bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
    try:
        return FolderSettings.model_validate({k: v for k, v in item.items() if k not in bad})
    except ValidationError:
        return None


def _resolve_secrets(
    settings: Settings, config_file: Path | None, used: set[str]
) -> tuple[Settings, list[Problem]]:
    """Read the ``*_file`` secret of each section in ``used``; both keys set is a problem
    anywhere. A relative path is looked up in ``$CREDENTIALS_DIRECTORY`` (systemd
    ``LoadCredential=``), else next to the config file."""
    problems: list[Problem] = []
    updates: dict[str, BaseModel] = {}
    for section, key in SECRET_KEYS.items():
        model: BaseModel | None = getattr(settings, section)
        if model is None:
            continue
        secret, secret_file = getattr(model, key), getattr(model, f"{key}_file")
        if secret is not None and secret_file is not None:
            both = f"set either {key} or {key}_file, not both"
            problems.append((f"{section}.{key}_file", both))
        elif secret is None and secret_file is not None and section in used:
            try:
                value = read_secret_file(secret_file, f"{section}.{key}_file", config_file)
            except ConfigError as exc:
                problems += exc.problems
                continue
            updates[section] = model.model_copy(update={key: value})
    return settings.model_copy(update=updates), problems


def cross_check(
    settings: Settings,
    *,
    require_folders: bool = True,
    require_credentials: bool = True,
    require_jet: bool = False,
) -> list[Problem]:
    """Problems no single field can see: missing credentials, overlapping folders, ..."""
    problems: list[Problem] = []
    jet = settings.jet
    used = sections_in_use(settings, require_jet=require_jet)
    if require_credentials and "jet" in used:
        if not jet.client_id:
            problems.append(("jet.client_id", "required: the Jet API client id"))
        if jet.client_secret is None and jet.client_secret_file is None:
            both = "required: set client_secret or client_secret_file"
            problems.append(("jet.client_secret", both))
    if jet.poll_max_seconds < jet.poll_min_seconds:
        problems.append(("jet.poll_max_seconds", "must be >= jet.poll_min_seconds"))
    if require_folders and not settings.folders:
        problems.append(("folders", "configure at least one [[folders]] entry"))
    problems += _target_problems(settings)
    return problems + folder_problems(list(enumerate(settings.folders)))


def _target_problems(settings: Settings) -> list[Problem]:
    """Each folder's target has its section; an IM folder knows which job config to run."""
    problems: list[Problem] = []
    for i, folder in enumerate(settings.folders):
        section = TARGET_SECTIONS[folder.target]
        if getattr(settings, section) is None:
            problems.append(
                (f"folders[{i}].target", f"{folder.target!r} needs a [{section}] section")
            )
        im = settings.integration_manager
        if folder.target == "integration-manager" and not folder.job and im and not im.job_config:
            why = "required: the job config id to run (or set integration_manager.job_config)"
            problems.append((f"folders[{i}].job", why))
    return problems
