"""The [ledger] section: SQLite path or PostgreSQL url (never both), its password, the lease."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jetwatch.config.load import load_settings
from jetwatch.errors import ConfigError
from tests.fixtures.daemon import write_toml

URL = "postgresql://jetwatch@db.example.com:5432/jetwatch"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("JETWATCH_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def config(tmp_path: Path, **ledger: Any) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    body = {
        "jet": {"client_id": "cid", "client_secret": "s"},
        "ledger": ledger,
        "folders": [{"path": str(tmp_path / "in"), "job": "Job"}],
    }
    return write_toml(tmp_path / "c.toml", body)


def problems(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return dict(caught.value.problems)


def test_url_selects_postgres_and_reads_the_password_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative password_file is found in $CREDENTIALS_DIRECTORY; the lease has a default."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ledger_password").write_text("db-secret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings(config(tmp_path, url=URL, password_file="ledger_password"))
    assert settings.ledger.shared
    assert settings.ledger.password is not None
    assert settings.ledger.password.get_secret_value() == "db-secret"
    assert settings.ledger.lease_seconds == 15
    assert "db-secret" not in repr(settings)


def test_status_commands_read_the_ledger_password_too(tmp_path: Path) -> None:
    """Commands that need no target credentials still need the ledger's."""
    (tmp_path / "pw").write_text("db-secret", encoding="utf-8")
    path = config(tmp_path, url=URL, password_file=str(tmp_path / "pw"))
    settings = load_settings(path, require_folders=False, require_credentials=False)
    assert settings.ledger.password is not None


def test_env_password_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JETWATCH_LEDGER__PASSWORD", "from-env")
    settings = load_settings(config(tmp_path, url=URL, password_file="/nonexistent"))
    assert settings.ledger.password is not None
    assert settings.ledger.password.get_secret_value() == "from-env"


@pytest.mark.parametrize(
    ("ledger", "key", "says"),
    [
        ({"url": URL, "path": "/var/lib/jetwatch/ledger.db"}, "ledger", "not both"),
        ({"url": "mysql://u@h/db"}, "ledger.url", "not postgresql://"),
        ({"url": "postgresql://u@h:5432"}, "ledger.url", "names no database"),
        ({"url": "postgresql://u:hunter2@h/db"}, "ledger.url", "password out of the URL"),
        ({"url": "postgresql://u@h:port/db"}, "ledger.url", "not a valid URL"),
        ({"url": URL, "lease_seconds": 1}, "ledger.lease_seconds", "greater than or equal"),
        ({"url": URL, "password": "a", "password_file": "b"}, "ledger.password_file", "not both"),
    ],
)
def test_bad_ledger_settings_name_the_key(
    tmp_path: Path, ledger: dict[str, Any], key: str, says: str
) -> None:
    """One problem per key, and never the secret itself."""
    found = problems(config(tmp_path, **ledger))
    assert says in found[key], found
    assert "hunter2" not in str(found)
