"""Tests for jetwatch.config: TOML + env, problems named by key, secrets, the example file."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from jetwatch.config import settings as config_module
from jetwatch.config.load import config_path, load_settings
from jetwatch.config.settings import Settings
from jetwatch.config.targets import IntegrationManagerSettings, JetStreamSettings
from jetwatch.errors import ConfigError
from tests.fixtures.daemon import write_toml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No JETWATCH_* or systemd credentials from the environment running the tests."""
    for name in list(os.environ):
        if name.upper().startswith("JETWATCH_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def minimal(tmp_path: Path, **jet: Any) -> dict[str, Any]:
    (tmp_path / "in").mkdir(exist_ok=True)
    return {
        "jet": {"client_id": "cid", "client_secret": "file-secret", **jet},
        "ledger": {"path": str(tmp_path / "ledger.db")},
        "folders": [{"path": str(tmp_path / "in"), "job": "Job"}],
    }


def problems_of(path: Path | None, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, **kwargs)
    found: dict[str, str] = {}
    for key, message in caught.value.problems:
        found[key] = f"{found[key]}\n{message}" if key in found else message
    return found


def test_toml_loads_and_env_overrides_nested_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JETWATCH_<SECTION>__<KEY> wins over the file; other keys keep the file's values."""
    path = write_toml(tmp_path / "c.toml", minimal(tmp_path, max_retries=3))
    monkeypatch.setenv("JETWATCH_JET__CLIENT_SECRET", "env-secret")
    monkeypatch.setenv("JETWATCH_LOG__LEVEL", "DEBUG")
    settings = load_settings(path)
    assert settings.jet.client_secret is not None
    assert settings.jet.client_secret.get_secret_value() == "env-secret"
    assert settings.jet.max_retries == 3
    assert settings.jet.client_id == "cid"
    assert settings.log.level == "debug"
    assert settings.folders[0].path == tmp_path / "in"


def test_missing_config_file_names_the_option(tmp_path: Path) -> None:
    """A --config path that does not exist is one problem keyed --config."""
    found = problems_of(tmp_path / "nope.toml")
    assert list(found) == ["--config"]
    assert "no such file" in found["--config"]


def test_jetwatch_config_env_is_the_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$JETWATCH_CONFIG is used without --config, and named when its file is missing."""
    path = write_toml(tmp_path / "c.toml", minimal(tmp_path))
    monkeypatch.setenv("JETWATCH_CONFIG", str(path))
    assert config_path(None) == path
    assert config_path("/other.toml") == Path("/other.toml")
    assert load_settings(config_path(None)).jet.client_id == "cid"
    monkeypatch.setenv("JETWATCH_CONFIG", str(tmp_path / "gone.toml"))
    found = problems_of(config_path(None))
    assert list(found) == ["--config ($JETWATCH_CONFIG)"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[jet\nclient_id = 1\n", "not valid TOML"),
        (b'[jet]\nclient_id = "a"\nclient_id = "b"\n', "not valid TOML"),
        (b"\xff\xfe[jet]\n", "not UTF-8"),
    ],
)
def test_unreadable_toml_is_one_problem(tmp_path: Path, content: bytes, expected: str) -> None:
    """Broken TOML (syntax, duplicate key, encoding) is reported, never a traceback."""
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    found = problems_of(path)
    assert expected in found["--config"]


def test_unknown_keys_are_named_with_their_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt key says where it is: folders[0].setle_seconds, or the env variable."""
    data = minimal(tmp_path)
    data["folders"][0]["setle_seconds"] = 3
    data["extra_section"] = {"a": 1}
    monkeypatch.setenv("JETWATCH_JET__TIMEOUT", "5")
    found = problems_of(write_toml(tmp_path / "c.toml", data))
    assert "unknown key" in found["folders[0].setle_seconds"]
    assert "unknown key" in found["extra_section"]
    assert "$JETWATCH_JET__TIMEOUT" in found["jet.timeout"]


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("folder", "settle_seconds", -1),
        ("folder", "max_wait_seconds", -0.5),
        ("folder", "scan_interval_seconds", 0),
        ("jet", "request_timeout_seconds", 0),
        ("jet", "poll_min_seconds", -2),
        ("daemon", "shutdown_timeout_seconds", -5),
    ],
)
def test_negative_durations_are_refused(
    tmp_path: Path, section: str, key: str, value: float
) -> None:
    """Durations must be positive (or zero where zero means "at once")."""
    data = minimal(tmp_path)
    if section == "folder":
        data["folders"][0][key] = value
        expected_key = f"folders[0].{key}"
    else:
        data.setdefault(section, {})[key] = value
        expected_key = f"{section}.{key}"
    found = problems_of(write_toml(tmp_path / "c.toml", data))
    assert list(found) == [expected_key]
    assert "greater than" in found[expected_key]


def test_folder_cross_checks(tmp_path: Path) -> None:
    """move needs done_dir; done/failed dirs may not lie in any watched folder; no nesting."""
    data = minimal(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    data["folders"] = [
        {"path": str(a), "job": "J", "post_action": "move"},
        {"path": str(b), "job": "J", "done_dir": str(b / "done")},
        {"path": str(tmp_path / "c"), "job": "J", "failed_dir": str(a / "failed")},
        {"path": str(a / "sub"), "job": "J", "name": "nested"},
        {"path": str(tmp_path / "d"), "job": "J", "name": "nested"},
        {"path": str(b), "job": "J", "name": "twice"},
    ]
    found = problems_of(write_toml(tmp_path / "c.toml", data))
    assert 'required when post_action = "move"' in found["folders[0].done_dir"]
    assert "inside the watched folder" in found["folders[1].done_dir"]
    assert "inside folders[0].path" in found["folders[2].failed_dir"]
    assert "overlaps folders[0].path" in found["folders[3].path"]
    assert "duplicate folder name 'nested'" in found["folders[4].name"]
    assert "overlaps folders[1].path" in found["folders[5].path"]


def test_field_errors_and_cross_checks_are_reported_together(tmp_path: Path) -> None:
    """One run of `check` lists everything: a bad value does not hide a missing done_dir."""
    data = minimal(tmp_path)
    data["http"] = {"listen": "nowhere"}
    data["folders"][0]["post_action"] = "move"
    found = problems_of(write_toml(tmp_path / "c.toml", data))
    assert set(found) == {"http.listen", "folders[0].done_dir"}
    assert not found["http.listen"].startswith("Value error")


@pytest.mark.parametrize("listen", ["nowhere", "127.0.0.1:99999", "[::1:80", "127.0.0.1"])
def test_bad_listen_address(tmp_path: Path, listen: str) -> None:
    """http.listen must be host:port, [v6]:port or empty."""
    data = minimal(tmp_path)
    data["http"] = {"listen": listen}
    found = problems_of(write_toml(tmp_path / "c.toml", data))
    assert "invalid listen address" in found["http.listen"]


@pytest.mark.parametrize("url", ["ftp://host", "http://", "platform.example.com", ""])
def test_bad_base_url(tmp_path: Path, url: str) -> None:
    """jet.base_url must be an http(s) URL with a host."""
    found = problems_of(write_toml(tmp_path / "c.toml", minimal(tmp_path, base_url=url)))
    assert "not an http(s) URL" in found["jet.base_url"]


def test_folders_written_as_a_table_get_a_hint(tmp_path: Path) -> None:
    """[folders] instead of [[folders]] is the classic TOML slip: say how to write it."""
    data = minimal(tmp_path)
    data["folders"] = {"path": str(tmp_path / "in"), "job": "J"}
    found = problems_of(write_toml(tmp_path / "c.toml", data))
    assert "[[folders]]" in found["folders"]


# ---- secrets ---------------------------------------------------------------------------


def test_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    """client_secret_file: the file's content without the trailing newline."""
    (tmp_path / "secret").write_text("s3cret-value\n")
    data = minimal(tmp_path)
    data["jet"] = {"client_id": "cid", "client_secret_file": str(tmp_path / "secret")}
    settings = load_settings(write_toml(tmp_path / "c.toml", data))
    assert settings.jet.client_secret is not None
    assert settings.jet.client_secret.get_secret_value() == "s3cret-value"
    assert "s3cret" not in repr(settings)


def test_relative_secret_file_uses_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd LoadCredential=: a relative name is looked up in $CREDENTIALS_DIRECTORY."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "client_secret").write_text("from-credentials")
    (tmp_path / "client_secret").write_text("next-to-config")
    data = minimal(tmp_path)
    data["jet"] = {"client_id": "cid", "client_secret_file": "client_secret"}
    path = write_toml(tmp_path / "c.toml", data)
    settings = load_settings(path)
    assert settings.jet.client_secret is not None
    assert settings.jet.client_secret.get_secret_value() == "next-to-config"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings(path)
    assert settings.jet.client_secret is not None
    assert settings.jet.client_secret.get_secret_value() == "from-credentials"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.mkdir(), "cannot read"),
        (lambda p: p.write_text(" \n"), "is empty"),
        (lambda p: p.write_bytes(b"\xff\xfe"), "cannot read"),
        (lambda p: None, "No such file"),
    ],
)
def test_unusable_secret_file(tmp_path: Path, make: Any, expected: str) -> None:
    """A secret file that is missing, unreadable or empty is a problem keyed to it."""
    target = tmp_path / "secret"
    make(target)
    data = minimal(tmp_path)
    data["jet"] = {"client_id": "cid", "client_secret_file": str(target)}
    found = problems_of(write_toml(tmp_path / "c.toml", data))
    assert list(found) == ["jet.client_secret_file"]
    assert expected in found["jet.client_secret_file"]


def test_env_secret_file_beats_a_secret_left_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit/compose set JETWATCH_JET__CLIENT_SECRET_FILE; the example's placeholder loses."""
    (tmp_path / "real").write_text("the-real-secret")
    path = write_toml(tmp_path / "c.toml", minimal(tmp_path, client_secret="..."))
    monkeypatch.setenv("JETWATCH_JET__CLIENT_SECRET_FILE", str(tmp_path / "real"))
    settings = load_settings(path)
    assert settings.jet.client_secret is not None
    assert settings.jet.client_secret.get_secret_value() == "the-real-secret"


def test_secret_and_secret_file_in_one_source_conflict(tmp_path: Path) -> None:
    """Both keys in the file is ambiguous: which one did the operator mean?"""
    (tmp_path / "s").write_text("x")
    data = minimal(tmp_path, client_secret_file=str(tmp_path / "s"))
    found = problems_of(write_toml(tmp_path / "c.toml", data))
    assert "not both" in found["jet.client_secret_file"]


def test_missing_or_empty_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty client_secret is no secret; ledger-only commands do not need one."""
    data = minimal(tmp_path, client_secret="", client_id="")
    path = write_toml(tmp_path / "c.toml", data)
    found = problems_of(path)
    assert set(found) == {"jet.client_id", "jet.client_secret"}
    monkeypatch.setenv("JETWATCH_JET__CLIENT_SECRET", "")
    assert load_settings(path, require_credentials=False).jet.client_secret is None


def test_no_folders_is_a_problem_only_where_folders_matter(tmp_path: Path) -> None:
    """`run` and `check` need a folder; `jobs` does not."""
    data = minimal(tmp_path)
    del data["folders"]
    path = write_toml(tmp_path / "c.toml", data)
    assert "[[folders]]" in problems_of(path)["folders"]
    assert load_settings(path, require_folders=False).folders == []


# ---- the example file ------------------------------------------------------------------


def _models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [IntegrationManagerSettings, JetStreamSettings]
    for value in vars(config_module).values():
        if (
            isinstance(value, type)
            and issubclass(value, BaseModel)
            and value.__module__ == config_module.__name__
        ):
            found.append(value)
    return found


def test_example_config_loads_with_its_placeholders() -> None:
    """config.example.toml as shipped is a valid configuration."""
    settings = load_settings(EXAMPLE)
    assert settings.jet.client_id == "..."
    assert len(settings.folders) == 1


def test_example_documents_every_key() -> None:
    """Every field of every settings model appears in config.example.toml."""
    text = EXAMPLE.read_text(encoding="utf-8")
    models = _models()
    assert Settings in models
    assert len(models) >= 6
    missing = [
        f"{model.__name__}.{name}"
        for model in models
        for name in model.model_fields
        if f"{name} =" not in text and f"[{name}]" not in text and f"[[{name}]]" not in text
    ]
    assert not missing, f"undocumented keys: {missing}"


def test_example_target_sections_uncommented_load() -> None:
    """The commented [integration_manager], [jetstream] and extra folders of the example load."""
    keys = re.compile(r"^# (\[\[?\w+\]\]?$|\w+ = )")
    head, sep, tail = EXAMPLE.read_text(encoding="utf-8").partition("# [integration_manager]")
    assert sep
    lines = (sep + tail).splitlines()
    text = head + "\n".join(line[2:] if keys.match(line) else line for line in lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "example.toml"
        path.write_text(text, encoding="utf-8")
        settings = load_settings(path)
    assert [f.target for f in settings.folders] == ["jet", "integration-manager", "jetstream"]
    assert settings.integration_manager is not None
    assert settings.integration_manager.job_config == "44"
    assert settings.jetstream is not None
    assert settings.jetstream.destination_host == "receiver.example.com"


# ---- [http] actions and token, [notify] ------------------------------------------------


def test_console_actions_need_a_long_enough_token(tmp_path: Path) -> None:
    """actions = true without a token, or with a short one, is a problem naming http.token."""
    cfg = minimal(tmp_path)
    cfg["http"] = {"actions": True}
    found = problems_of(write_toml(tmp_path / "a.toml", cfg))
    assert found == {"http.token": "required when http.actions = true: set token or token_file"}
    cfg["http"] = {"actions": True, "token": "short"}
    found = problems_of(write_toml(tmp_path / "b.toml", cfg))
    assert found == {"http.token": "too short: use at least 16 characters"}
    (tmp_path / "token").write_text("a-token-from-a-file-0123\n", encoding="utf-8")
    cfg["http"] = {"actions": True, "token_file": "token"}
    settings = load_settings(write_toml(tmp_path / "c.toml", cfg))
    assert settings.http.actions is True
    assert settings.http.token is not None
    assert settings.http.token.get_secret_value() == "a-token-from-a-file-0123"
    assert load_settings(write_toml(tmp_path / "d.toml", minimal(tmp_path))).http.actions is False


def test_webhook_url_is_checked_without_being_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad URL names notify.webhook_url, never its value; env and a file may set it."""
    cfg = minimal(tmp_path)
    cfg["notify"] = {"webhook_url": "hooks.example.com/services/SECRETKEY", "events": ["failed"]}
    found = problems_of(write_toml(tmp_path / "a.toml", cfg))
    assert found == {"notify.webhook_url": "not an http(s) URL with a host"}
    cfg["notify"] = {"events": ["exploded"]}
    assert "notify.events[0]" in problems_of(write_toml(tmp_path / "b.toml", cfg))
    (tmp_path / "hook").write_text("https://hooks.example.com/services/FROMFILE\n", "utf-8")
    cfg["notify"] = {"webhook_url_file": str(tmp_path / "hook")}
    settings = load_settings(write_toml(tmp_path / "c.toml", cfg))
    assert settings.notify.webhook_url is not None
    assert settings.notify.webhook_url.get_secret_value().endswith("/FROMFILE")
    assert settings.notify.events == ["failed", "held", "recovered", "down"]
    assert "FROMFILE" not in repr(settings)
    monkeypatch.setenv("JETWATCH_NOTIFY__WEBHOOK_URL", "https://hooks.example.com/services/ENV")
    settings = load_settings(write_toml(tmp_path / "d.toml", cfg))
    assert settings.notify.webhook_url is not None
    assert settings.notify.webhook_url.get_secret_value().endswith("/ENV")
