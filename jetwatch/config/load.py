"""Loading the configuration: TOML file overridden by ``JETWATCH_*`` env vars, validated once.

Precedence: environment (``JETWATCH_JET__CLIENT_SECRET``, ``__`` nests) over the TOML file
over defaults. Every problem is reported as ``(key, message)`` in one ``ConfigError`` so the
CLI can print one line per problem and exit 2, never a traceback.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from jetwatch.config.checks import folder_problems
from jetwatch.config.secrets import read_secret_file
from jetwatch.config.settings import TARGET_SECTIONS, FolderSettings, Settings
from jetwatch.errors import ConfigError

CONFIG_ENV = "JETWATCH_CONFIG"
MIN_TOKEN_CHARS = 16
Problem = tuple[str, str]
# The secret key of each section that has one; ``<key>_file`` is its file variant.
SECRET_KEYS = {
    "jet": "client_secret",
    "integration_manager": "password",
    "jetstream": "password",
    "http": "token",
    "notify": "webhook_url",
    "ledger": "password",
}
# Sections whose secret the daemon needs whatever the folders use.
OPS_SECTIONS = frozenset({"http", "notify"})


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
    if path is None and not _settings_in_env():
        raise ConfigError(
            [("--config", "no configuration: pass --config FILE or set $JETWATCH_CONFIG")]
        )
    data = _prefer_env_secret(_read_toml(path))
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        # Report what the other fields' cross-checks find too: one round of fixes, not many.
        found = _problems(exc) + _partial_folder_checks(data)
        raise ConfigError(list(dict.fromkeys(found))) from None
    used = sections_in_use(settings, require_jet=require_jet)
    needed = used | OPS_SECTIONS if require_credentials else set()
    if settings.ledger.shared:
        needed.add("ledger")  # status and ledger commands read a PostgreSQL ledger too
    settings, problems = _resolve_secrets(settings, path, needed)
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


def _settings_in_env() -> bool:
    """Whether any JETWATCH_<SECTION>... variable could configure something."""
    sections = tuple(f"JETWATCH_{name.upper()}" for name in Settings.model_fields)
    return any(
        k.upper() in sections or k.upper().startswith(tuple(s + "__" for s in sections))
        for k, v in os.environ.items()
        if v
    )


def _env_folder_keys() -> list[str]:
    return sorted(k for k in os.environ if k.upper().startswith("JETWATCH_FOLDERS__"))


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
        elif key == "folders" and _env_folder_keys():
            message = (
                f"${_env_folder_keys()[0]}: folders cannot be set one key at a time from the "
                "environment; put [[folders]] in the config file, or set JETWATCH_FOLDERS to "
                """a JSON list such as '[{"path": "/srv/in", "job": "Manual Job"}]'"""
            )
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
    problems += _target_problems(settings) + ops_problems(settings)
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


def ops_problems(settings: Settings) -> list[Problem]:
    """The console's actions need a token; the webhook needs an http(s) URL with a host."""
    problems: list[Problem] = []
    http = settings.http
    if http.actions and http.token is None and http.token_file is None:
        problems.append(
            ("http.token", "required when http.actions = true: set token or token_file")
        )
    elif http.token is not None and len(http.token.get_secret_value()) < MIN_TOKEN_CHARS:
        problems.append(("http.token", f"too short: use at least {MIN_TOKEN_CHARS} characters"))
    url = settings.notify.webhook_url
    if url is not None:
        try:
            parts = urlsplit(url.get_secret_value())
            usable = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            usable = False
        if not usable:
            # Never the value itself: the path of a chat webhook is its key.
            problems.append(("notify.webhook_url", "not an http(s) URL with a host"))
    return problems
