"""Configuration of folder targets: sections, secrets and `job` as each target needs them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jetwatch.config.load import load_settings
from jetwatch.errors import ConfigError
from tests.fixtures.daemon import write_toml


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No JETWATCH_* or systemd credentials from the environment running the tests."""
    for name in list(os.environ):
        if name.upper().startswith("JETWATCH_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


IM = {"base_url": "https://im.example/", "username": "u", "password": "p", "job_config": "44"}
JS = {"username": "jsmith", "password": "secret", "destination_host": "receiver.example"}


def config(tmp_path: Path, *folders: dict[str, Any], **sections: Any) -> Path:
    """A config of ``folders`` (paths made under tmp_path) and ``sections``."""
    items = []
    for i, folder in enumerate(folders):
        path = tmp_path / f"in{i}"
        path.mkdir(exist_ok=True)
        items.append({"path": str(path), **folder})
    data = {"ledger": {"path": str(tmp_path / "ledger.db")}, **sections, "folders": items}
    return write_toml(tmp_path / "c.toml", data)


def problems(path: Path, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, **kwargs)
    return dict(caught.value.problems)


def test_only_the_targets_in_use_need_credentials(tmp_path: Path) -> None:
    """IM and JetStream folders load without any [jet] credentials; `jobs` still needs them."""
    path = config(
        tmp_path,
        {"target": "integration-manager"},
        {"target": "jetstream", "name": "js"},
        integration_manager=IM,
        jetstream=JS,
    )
    settings = load_settings(path)
    assert [f.target for f in settings.folders] == ["integration-manager", "jetstream"]
    assert settings.integration_manager is not None
    assert settings.integration_manager.base_url == "https://im.example"
    assert settings.jet.client_secret is None
    assert set(problems(path, require_jet=True)) == {"jet.client_id", "jet.client_secret"}


def test_a_target_needs_its_section_and_jet_needs_a_job(tmp_path: Path) -> None:
    """A folder naming a target without its section, or a jet folder without `job`, is named."""
    path = config(
        tmp_path,
        {"target": "integration-manager"},
        {"target": "jetstream", "name": "js"},
        {"name": "jet-without-job"},
        jet={"client_id": "c", "client_secret": "s"},
    )
    found = problems(path)
    assert (
        found["folders[0].target"] == "'integration-manager' needs a [integration_manager] section"
    )
    assert found["folders[1].target"] == "'jetstream' needs a [jetstream] section"
    assert 'required for target "jet"' in found["folders[2].job"]


def test_im_folder_names_its_job_config_or_the_section_does(tmp_path: Path) -> None:
    """`job` of an IM folder is its job config; without it the section's job_config is used."""
    im = {k: v for k, v in IM.items() if k != "job_config"}
    path = config(tmp_path, {"target": "integration-manager"}, integration_manager=im)
    assert "job config id" in problems(path)["folders[0].job"]
    path = config(tmp_path, {"target": "integration-manager", "job": "45"}, integration_manager=im)
    assert load_settings(path).folders[0].job == "45"


def test_target_passwords_come_from_files_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """password_file is read like jet.client_secret_file (in $CREDENTIALS_DIRECTORY); env wins."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "im_password").write_text("im-from-credentials\n")
    (creds / "js_password").write_text("js-from-credentials")
    im = {k: v for k, v in IM.items() if k != "password"} | {"password_file": "im_password"}
    js = {k: v for k, v in JS.items() if k != "password"} | {"password_file": "js_password"}
    path = config(
        tmp_path,
        {"target": "integration-manager"},
        {"target": "jetstream", "name": "js"},
        integration_manager=im,
        jetstream=js,
    )
    found = problems(path)  # next to the config file: not there
    assert set(found) == {"integration_manager.password_file", "jetstream.password_file"}
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings(path)
    assert settings.integration_manager is not None
    assert settings.integration_manager.password is not None
    assert settings.integration_manager.password.get_secret_value() == "im-from-credentials"
    assert settings.jetstream is not None
    assert settings.jetstream.password is not None
    assert settings.jetstream.password.get_secret_value() == "js-from-credentials"
    monkeypatch.setenv("JETWATCH_INTEGRATION_MANAGER__PASSWORD", "im-from-env")
    settings = load_settings(path)
    assert settings.integration_manager is not None
    assert settings.integration_manager.password is not None
    assert settings.integration_manager.password.get_secret_value() == "im-from-env"


def test_unused_sections_are_validated_but_their_secrets_not_read(tmp_path: Path) -> None:
    """A section no folder uses must still be valid; its missing secret file is not an error."""
    js = {**JS, "password_file": str(tmp_path / "missing")}
    del js["password"]
    jet = {"client_id": "c", "client_secret": "s"}
    path = config(tmp_path, {"job": "J"}, jet=jet, jetstream=js)
    assert load_settings(path).jetstream is not None
    both = {**IM, "password_file": "x"}
    path = config(tmp_path, {"job": "J"}, jet=jet, integration_manager=both)
    assert "not both" in problems(path)["integration_manager.password_file"]
    path = config(tmp_path, {"job": "J"}, jet=jet, jetstream={"username": "u"})
    assert set(problems(path)) == {"jetstream.destination_host"}
