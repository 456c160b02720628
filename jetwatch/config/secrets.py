"""Secrets kept in files (``*_file`` keys): where a relative path points, and reading one."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from jetwatch.errors import ConfigError


def secret_path(path: Path, config_file: Path | None = None) -> Path:
    """A relative path is looked up in ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``),
    else next to the config file."""
    path = path.expanduser()
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and creds:
        return Path(creds) / path
    if not path.is_absolute() and config_file is not None:
        return config_file.parent / path
    return path


def read_secret_file(path: Path, key: str, config_file: Path | None = None) -> SecretStr:
    """The stripped content of a secret file; a ConfigError naming ``key`` when it cannot be."""
    where = secret_path(path, config_file)
    try:
        secret = where.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError([(key, f"cannot read {where}: {reason}")]) from None
    if not secret:
        raise ConfigError([(key, f"{where} is empty")])
    return SecretStr(secret)


def read_secret(secret: SecretStr | None, secret_file: Path | None, key: str) -> SecretStr:
    """The secret itself, or the stripped content of its file; ConfigError naming ``key``."""
    if secret is not None:
        return secret
    if secret_file is None:
        raise ConfigError([(key, f"required: set {key} or {key}_file")])
    return read_secret_file(secret_file, f"{key}_file")
