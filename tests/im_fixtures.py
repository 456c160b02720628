"""Fixtures for tests that need a running Integration Manager emulator (see im_helpers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from jetwatch.emulator.im import ImEmulatorConfig, ImEmulatorServer
from jetwatch.targets.im_client import IntegrationManagerClient
from tests.im_helpers import IM_PASSWORD, IM_USER, ImApi, ImFactory, InstantSleep


@pytest.fixture
async def im_factory(tmp_path: Path) -> AsyncIterator[ImFactory]:
    """Start IM emulators with config overrides (output in tmp_path/im-out); stop them after."""
    servers: list[ImEmulatorServer] = []

    async def start(**overrides: Any) -> ImEmulatorServer:
        overrides.setdefault("output_dir", tmp_path / "im-out")
        overrides.setdefault("run_step_s", 0.01)
        server = ImEmulatorServer(ImEmulatorConfig(port=0, **overrides))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await server.stop()


@pytest.fixture
async def im_server(im_factory: ImFactory) -> ImEmulatorServer:
    """A started IM emulator on a free port."""
    return await im_factory()


@pytest.fixture
async def im_http() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session for the test, with explicit timeouts."""
    timeout = aiohttp.ClientTimeout(total=20, connect=5, sock_connect=5, sock_read=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


@pytest.fixture
async def im_api(im_server: ImEmulatorServer, im_http: aiohttp.ClientSession) -> ImApi:
    """A logged-in raw caller for the ``im_server`` fixture."""
    api = ImApi(im_http, im_server.url)
    await api.login()
    return api


@pytest.fixture
async def im_client(im_server: ImEmulatorServer) -> AsyncIterator[IntegrationManagerClient]:
    """An IntegrationManagerClient of the ``im_server`` fixture that never waits for backoff."""
    client = IntegrationManagerClient(
        im_server.url, IM_USER, SecretStr(IM_PASSWORD), sleep=InstantSleep(), max_retries=3
    )
    yield client
    await client.close()
