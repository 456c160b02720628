"""Backends: one client per back end, a target per folder configuration, closed at the end."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from jetwatch.config.settings import FolderSettings, JetSettings, Settings
from jetwatch.config.targets import IntegrationManagerSettings
from jetwatch.emulators.im import ImEmulatorServer
from jetwatch.errors import ConfigError
from jetwatch.targets.backends import Backends
from jetwatch.targets.jet import JetTarget
from jetwatch.targets.jetstream import JetStreamTarget
from tests.fixtures.fake_jetstream import FakeJetStreamServer
from tests.fixtures.targets import JS_PASSWORD, ImSetup, im_section, js_section


def jet_settings() -> JetSettings:
    return JetSettings(base_url="http://127.0.0.1:9", client_id="c", client_secret=SecretStr("s"))


async def test_each_folder_gets_its_kind_of_target(
    im_job: ImSetup, js_fake: FakeJetStreamServer, tmp_path: Path
) -> None:
    """Jet, IM and JetStream folders get their targets; refs name what each folder sends to."""
    server, config_id, _, _ = await im_job()
    settings = Settings(
        jet=jet_settings(),
        integration_manager=IntegrationManagerSettings(**im_section(server, config_id)),
        jetstream=js_section(destination_root="/in"),
    )
    folders = [
        FolderSettings(path=tmp_path / "a", job="Job", name="a"),
        FolderSettings(path=tmp_path / "b", target="integration-manager", name="b"),
        FolderSettings(path=tmp_path / "c", target="integration-manager", job="99", name="c"),
        FolderSettings(path=tmp_path / "d", target="jetstream", name="d"),
    ]
    backends = Backends(settings, jetstream_module=js_fake.module)
    try:
        routes = backends.routes(folders)
        assert [r.target.kind for r in routes.values()] == [
            "jet", "integration-manager", "integration-manager", "jetstream",
        ]  # fmt: skip
        assert [r.ref for r in routes.values()] == [
            "Job", config_id, "99", "receiver.example:8886/in",
        ]  # fmt: skip
        assert isinstance(routes["a"].target, JetTarget)
        assert isinstance(routes["d"].target, JetStreamTarget)
        assert backends.route(folders[0]) is routes["a"]  # built once per configuration
        changed = folders[0].model_copy(update={"job": "Other"})
        assert backends.route(changed) is not routes["a"]
        assert (await routes["b"].target.check()).ident == config_id
        missing = await routes["c"].target.check()
        assert "not found" in missing.problem
        assert (await routes["d"].target.check()).ready
        assert backends.poll_bounds()["jetstream"] == (0.1, 0.5)
        secrets = [s.get_secret_value() for s in backends.secrets()]
        assert secrets == ["s", "admin-secret", JS_PASSWORD]
    finally:
        await backends.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await routes["b"].target.check()
    assert js_fake.calls[-1] == "disconnect"


def test_a_target_without_its_section_or_credentials_is_a_config_error(tmp_path: Path) -> None:
    """A reload cannot add a target whose section or secret was not loaded at start."""
    backends = Backends(Settings())
    for target, key in (("integration-manager", "integration_manager"), ("jetstream", "jetstream")):
        with pytest.raises(ConfigError) as caught:
            backends.route(FolderSettings(path=tmp_path, target=target))
        assert caught.value.problems[0][0] == key
    with pytest.raises(ConfigError) as caught:
        backends.route(FolderSettings(path=tmp_path, job="J"))
    assert "restart" in caught.value.problems[0][1]


async def test_im_targets_share_one_client(im_job: ImSetup, tmp_path: Path) -> None:
    """Two IM folders log in once: one client, one session, for the whole process."""
    server, config_id, _, _ = await im_job()
    settings = Settings(
        integration_manager=IntegrationManagerSettings(**im_section(server, config_id))
    )
    before = await logins(server)  # the fixture's own
    backends = Backends(settings)
    try:
        for name in ("x", "y"):
            route = backends.route(
                FolderSettings(path=tmp_path / name, target="integration-manager", name=name)
            )
            assert (await route.target.check()).ready
    finally:
        await backends.aclose()
    assert await logins(server) == before + 1


async def logins(server: ImEmulatorServer) -> int:
    return int(server.stats.by_route["POST /api/login"])
