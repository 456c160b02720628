"""Builds and owns every folder's Target: one Jet client, one IM client, a JetStream per folder.

Clients are created on first use, so a configuration without Jet folders never needs Jet
credentials. Targets are built once per folder configuration and kept until ``aclose``:
a reload that changes a folder gets a new target, while batches already submitted through
the old one are followed through the new one (handles and idents are in the ledger).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from jetwatch.apis.im.client import IntegrationManagerClient
from jetwatch.apis.jet.client import JetClient
from jetwatch.config.secrets import read_secret
from jetwatch.config.settings import FolderSettings, JetSettings, Settings
from jetwatch.domain.target import Target
from jetwatch.errors import ConfigError
from jetwatch.targets.im import IntegrationManagerTarget, client_from_settings
from jetwatch.targets.jet import JetTarget
from jetwatch.targets.jetstream import JetStreamTarget
from jetwatch.targets.kinds import SPECS
from jetwatch.targets.registry import Route

RESTART_HINT = "not loaded when jetwatch started: restart it to use this target"


def jet_client(jet: JetSettings, *, max_retries: int | None = None) -> JetClient:
    """A Jet client as the ``[jet]`` section describes it (``max_retries`` may be lowered)."""
    assert jet.client_secret is not None
    try:
        return JetClient(
            jet.base_url,
            jet.client_id,
            jet.client_secret,
            request_timeout_s=jet.request_timeout_seconds,
            connect_timeout_s=jet.connect_timeout_seconds,
            max_retries=jet.max_retries if max_retries is None else max_retries,
            rate_limit_per_s=jet.rate_limit_per_second,
            proxy=jet.proxy,
            ca_file=jet.ca_file,
        )
    except ValueError as exc:  # the CA file is not a usable PEM bundle
        raise ConfigError([("jet.ca_file", str(exc))]) from None


class Backends:
    """The factory of Routes; ``jetstream_module`` replaces ``import jetstream`` (tests, demos)."""

    def __init__(self, settings: Settings, *, jetstream_module: Any = None) -> None:
        self._settings = settings
        self._jetstream_module = jetstream_module
        self._jet: JetClient | None = None
        self._im: IntegrationManagerClient | None = None
        self._built: list[tuple[FolderSettings, Route]] = []

    @property
    def jet_client(self) -> JetClient:
        """The one Jet client of the process (created on first use)."""
        if self._jet is None:
            jet = self._settings.jet
            if not jet.client_id or jet.client_secret is None:
                raise ConfigError([("jet.client_secret", f"Jet credentials {RESTART_HINT}")])
            self._jet = jet_client(jet)
        return self._jet

    def routes(self, folders: Iterable[FolderSettings]) -> dict[str, Route]:
        """The route of each folder by label; ConfigError when a target cannot be built."""
        return {folder.label: self.route(folder) for folder in folders}

    def route(self, folder: FolderSettings) -> Route:
        """The folder's route, built on first request for this exact folder configuration."""
        for known, route in self._built:
            if known == folder:
                return route
        route = self._build(folder)
        self._built.append((folder, route))
        return route

    def network_lines(self) -> list[str]:
        """How each HTTP API built so far is reached: proxy (and why) and trusted CAs."""
        lines = []
        if self._jet is not None:
            lines.append(f"Jet API {self._jet.base_url}: {self._jet.network.describe()}")
        if self._im is not None:
            im = self._im
            lines.append(f"Integration Manager API {im.base_url}: {im.network.describe()}")
        return lines

    def stall_bounds(self) -> dict[str, float]:
        """stall_s of each target kind that detects stalled submissions."""
        found = {kind: spec.stall_s(self._settings) for kind, spec in SPECS.items()}
        return {kind: stall_s for kind, stall_s in found.items() if stall_s is not None}

    def poll_bounds(self) -> dict[str, tuple[float, float]]:
        """(poll_min_s, poll_max_s) of each target kind whose section is configured."""
        found = {kind: spec.poll_bounds(self._settings) for kind, spec in SPECS.items()}
        return {kind: bounds for kind, bounds in found.items() if bounds is not None}

    def secrets(self) -> list[SecretStr]:
        """Every secret the targets may use, for log redaction."""
        found = [spec.secret(self._settings) for spec in SPECS.values()]
        return [secret for secret in found if secret is not None]

    async def aclose(self) -> None:
        """Close every target built, then the shared clients."""
        targets, self._built = [route.target for _, route in self._built], []
        for target in targets:
            await target.aclose()
        for client in (self._jet, self._im):
            if client is not None:
                await client.close()
        self._jet = self._im = None

    def _build(self, folder: FolderSettings) -> Route:
        if folder.target == "integration-manager":
            return self._im_route(folder)
        if folder.target == "jetstream":
            return self._jetstream_route()
        jet = self._settings.jet
        target = JetTarget(
            self.jet_client,
            folder.job,
            folder.root,
            folder=folder,
            delivery_timeout_s=jet.delivery_timeout_seconds,
            in_doubt_grace_s=jet.in_doubt_grace_seconds,
            in_doubt_max_wait_s=jet.in_doubt_max_wait_seconds,
            close_client=False,
        )
        return Route(target, folder.job)

    def _im_route(self, folder: FolderSettings) -> Route:
        section = self._settings.integration_manager
        if section is None:
            raise _missing("integration_manager")
        if self._im is None:
            password = self._password(
                "integration_manager", section.password, section.password_file
            )
            try:
                self._im = client_from_settings(section, password)
            except ValueError as exc:  # the CA file is not a usable PEM bundle
                raise ConfigError([("integration_manager.ca_file", str(exc))]) from None
        config_id = folder.job or section.job_config or ""
        try:
            target: Target = IntegrationManagerTarget.from_settings(
                section, self._im, job_config=config_id, close_client=False
            )
        except ValueError as exc:
            raise ConfigError([("integration_manager.job_config", str(exc))]) from None
        return Route(target, config_id)

    def _jetstream_route(self) -> Route:
        section = self._settings.jetstream
        if section is None:
            raise _missing("jetstream")
        password = self._password("jetstream", section.password, section.password_file)
        target = JetStreamTarget(section, password, module=self._jetstream_module)
        ref = f"{section.destination_host}:{section.destination_port}{section.destination_root}"
        return Route(target, ref)

    @staticmethod
    def _password(section: str, secret: SecretStr | None, secret_file: Path | None) -> SecretStr:
        return read_secret(secret, secret_file, f"{section}.password")


def _missing(section: str) -> ConfigError:
    return ConfigError([(section, f"the [{section}] section is {RESTART_HINT}")])
