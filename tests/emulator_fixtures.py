"""Fixtures for tests that need a running Jet emulator: the server, an API helper, a job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import pytest

from jetwatch.emulator import EmulatorConfig, EmulatorServer, bootstrap_manual_job

T = TypeVar("T")

ADMIN_ID, ADMIN_SECRET = "demo", "demo-secret"
VIEWER_ID, VIEWER_SECRET = "viewer", "viewer-secret"
TERMINAL = ("COMPLETED", "FAILED")


class EmulatorFactory(Protocol):
    async def __call__(self, **overrides: Any) -> EmulatorServer: ...


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], *, timeout_s: float = 10.0, interval_s: float = 0.02
) -> T:
    """Poll ``probe`` until it returns something other than None; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


async def fetch_token(
    session: aiohttp.ClientSession,
    base_url: str,
    client_id: str = ADMIN_ID,
    client_secret: str = ADMIN_SECRET,
) -> str:
    """A bearer token from the emulator for the given client."""
    body = {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_type": "client_credentials",
    }
    async with session.post(f"{base_url}/oauth/token", json=body) as response:
        assert response.status == 200, await response.text()
        token: str = (await response.json())["access_token"]
        return token


class Api:
    """A small JSON caller for tests: ``(status, body)`` for each request."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.session = session
        self.base_url = base_url
        self.token = token

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.session.request(
            method, self.base_url + path, json=body, headers=headers
        ) as response:
            text = await response.text()
            return response.status, (await response.json(content_type=None)) if text else None

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        """The body of a call that must succeed."""
        status, data = await self.call(method, path, body)
        assert 200 <= status < 300, (status, data)
        return data

    async def deliver(self, job_id: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
        """POST a delivery and return the created delivery."""
        created: dict[str, Any] = await self.ok(
            "POST", f"/v1/jobs/{job_id}/deliveries", {"objects": objects}
        )
        return created

    async def wait_delivery(
        self, job_id: str, delivery_id: str, *, timeout_s: float = 10.0
    ) -> dict[str, Any]:
        """The delivery once it reached COMPLETED or FAILED."""

        async def finished() -> dict[str, Any] | None:
            data = await self.ok("GET", f"/v1/jobs/{job_id}/deliveries/{delivery_id}")
            return data if data["state"] in TERMINAL else None

        return await wait_for(finished, timeout_s=timeout_s)


@pytest.fixture
async def emulator_factory(tmp_path: Path) -> AsyncIterator[EmulatorFactory]:
    """Start emulators with config overrides (state in tmp_path unless given); stop them after."""
    servers: list[EmulatorServer] = []

    async def start(**overrides: Any) -> EmulatorServer:
        overrides.setdefault("state_dir", tmp_path / "emulator-state")
        server = EmulatorServer(EmulatorConfig(port=0, **overrides))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await server.stop()


@pytest.fixture
async def emulator(emulator_factory: EmulatorFactory) -> EmulatorServer:
    """A started emulator on a free port with its state in tmp_path."""
    return await emulator_factory()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session for the test, with explicit timeouts."""
    timeout = aiohttp.ClientTimeout(total=20, connect=5, sock_connect=5, sock_read=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


@pytest.fixture
async def api(emulator: EmulatorServer, http: aiohttp.ClientSession) -> Api:
    """An admin API caller for the ``emulator`` fixture."""
    return Api(http, emulator.url, await fetch_token(http, emulator.url))


async def make_manual_job(
    server: EmulatorServer, root: Path, name: str = "Manual Job"
) -> tuple[str, Path, Path]:
    """Create ``root/source`` and ``root/dest`` and a manual job between them."""
    src, dst = root / "source", root / "dest"
    src.mkdir(parents=True, exist_ok=True)
    dst.mkdir(parents=True, exist_ok=True)
    job_id = await bootstrap_manual_job(server.url, ADMIN_ID, ADMIN_SECRET, src, dst, name)
    return job_id, src, dst


@pytest.fixture
async def emulator_job(
    emulator: EmulatorServer, tmp_path: Path
) -> tuple[EmulatorServer, str, Path, Path]:
    """``(server, job_id, source_dir, dest_dir)``: a manual job between two tmp folders."""
    job_id, src, dst = await make_manual_job(emulator, tmp_path)
    return emulator, job_id, src, dst
