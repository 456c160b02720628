"""Target settings sections, secrets from files, the variables template and the batch token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from jetwatch.apis.im.client import IntegrationManagerClient
from jetwatch.config.secrets import read_secret
from jetwatch.config.targets import (
    DEFAULT_VARIABLES,
    IntegrationManagerSettings,
    JetStreamSettings,
    VariableSource,
)
from jetwatch.domain.target import SubmitObject, Target, batch_token
from jetwatch.emulators.im.engine import parse_file_list
from jetwatch.errors import ConfigError
from jetwatch.targets.im import IntegrationManagerTarget
from jetwatch.targets.im_variables import render_variables
from jetwatch.targets.jet import JetTarget
from jetwatch.targets.jetstream import JetStreamTarget

IM: dict[str, Any] = {
    "base_url": "https://im.example/",
    "username": "admin",
    "password": "pw",
    "job_config": "44",
}
JS: dict[str, Any] = {"username": "jsmith", "password": "pw", "destination_host": "dest"}


def all_targets(jet: JetTarget, im: IntegrationManagerTarget, js: JetStreamTarget) -> list[Target]:
    """Never called: mypy --strict checks that each class satisfies the Target protocol."""
    return [jet, im, js]


def test_integration_manager_defaults() -> None:
    """Defaults: the documented variables template, seed-sized timeouts, a trimmed URL."""
    settings = IntegrationManagerSettings(**IM)
    assert settings.base_url == "https://im.example"
    assert settings.variables == dict(DEFAULT_VARIABLES)
    assert (settings.variables_key, settings.run_timeout_seconds) == ("variables", 86400.0)
    assert settings.password == SecretStr("pw")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"password": None}, "password"),
        ({"base_url": "ftp://x"}, "http(s)"),
        ({"variables": {}}, "at least one"),
        ({"variables": {"X": "files_xml"}}, "files_json"),
        ({"variables": {"N": "count", "B": "total_bytes"}}, "batch or a file list"),
        ({"variables": {" ": "batch"}}, "must not be empty"),
        ({"poll_min_seconds": 10, "poll_max_seconds": 5}, "poll_max_seconds"),
        ({"job_config": ""}, "job_config"),
        ({"jobconfig": "44"}, "jobconfig"),
    ],
)
def test_integration_manager_problems(change: dict[str, Any], problem: str) -> None:
    """Each bad value is a validation error that names the key or the fix."""
    with pytest.raises(ValidationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        IntegrationManagerSettings(**{**IM, **change})


def test_password_file_is_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """password_file replaces password; relative paths resolve in $CREDENTIALS_DIRECTORY."""
    (tmp_path / "im-pass").write_text("from-file\n")
    settings = IntegrationManagerSettings(**{**IM, "password": None, "password_file": "im-pass"})
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    secret = read_secret(settings.password, settings.password_file, "integration_manager.password")
    assert secret.get_secret_value() == "from-file"


@pytest.mark.parametrize("content", [None, "  \n"])
def test_unreadable_or_empty_secret_file_is_a_config_error(
    tmp_path: Path, content: str | None
) -> None:
    """A missing or empty secret file is one ConfigError naming the *_file key."""
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        read_secret(None, path, "jetstream.password")
    assert caught.value.problems[0][0] == "jetstream.password_file"
    with pytest.raises(ConfigError):
        read_secret(None, None, "jetstream.password")


def test_jetstream_defaults_and_problems() -> None:
    """Ports default to 8886; destination_root must be absolute and normalised."""
    settings = JetStreamSettings(**JS)
    assert (settings.host, settings.port, settings.destination_port) == ("localhost", 8886, 8886)
    assert (settings.destination_root, settings.max_resumes) == ("/", 3)
    assert JetStreamSettings(**JS, destination_root="/in//box/").destination_root == "/in/box"
    for bad in ({"destination_root": "relative"}, {"destination_root": "/a/../b"}, {"port": 0}):
        with pytest.raises(ValidationError):
            JetStreamSettings(**{**JS, **bad})
    with pytest.raises(ValidationError, match="password"):
        JetStreamSettings(**{**JS, "password": None})


def test_batch_token_depends_on_content_not_order(tmp_path: Path) -> None:
    """Same files in any order give one token; another size or path gives another."""
    a = SubmitObject("a.mov", str(tmp_path / "a.mov"), 10)
    b = SubmitObject("b.mov", str(tmp_path / "b.mov"), 20)
    assert batch_token([a, b]) == batch_token([b, a])
    assert batch_token([a, b]) != batch_token([a, SubmitObject("b.mov", b.local_path, 21)])
    assert batch_token([a]) != batch_token([b])
    assert batch_token([a]).startswith("jw-")


def test_render_variables_every_source(tmp_path: Path) -> None:
    """Each source renders as documented; file lists survive parse_file_list."""
    objects = [
        SubmitObject("x/a b.mov", str(tmp_path / "x" / "a b.mov"), 3),
        SubmitObject("c.mov", str(tmp_path / "c.mov"), 4),
    ]
    rendered = render_variables({s.value: s for s in VariableSource}, objects)
    assert parse_file_list(rendered["files_json"]) == [str(o.local_path) for o in objects]
    assert parse_file_list(rendered["files_lines"]) == [str(o.local_path) for o in objects]
    assert parse_file_list(rendered["relpaths_json"]) == ["x/a b.mov", "c.mov"]
    assert rendered["relpaths_lines"] == "x/a b.mov\nc.mov"
    assert (rendered["count"], rendered["total_bytes"]) == ("2", "7")
    assert rendered["batch"] == batch_token(objects)
    assert parse_file_list("[not json\n/b") == ["[not json", "/b"]


def test_target_refuses_a_template_that_cannot_tell_batches_apart() -> None:
    """Without batch or a file list, in-doubt resolution could adopt another batch's run."""
    client = IntegrationManagerClient("http://127.0.0.1:1", "admin", SecretStr("pw"))
    with pytest.raises(ValueError, match="batch or a file list"):
        IntegrationManagerTarget(client, "44", variables={"N": VariableSource.COUNT})
