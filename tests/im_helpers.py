"""Helpers for Integration Manager tests: credentials, a raw JSON caller, an instant sleep."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from jetwatch.emulator.im import ImEmulatorServer

IM_USER, IM_PASSWORD = "admin", "admin-secret"


class ImFactory(Protocol):
    async def __call__(self, **overrides: Any) -> ImEmulatorServer: ...


@dataclass
class InstantSleep:
    """Records backoff delays without waiting, so fault storms cost no wall time."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)
        await asyncio.sleep(0)


class ImApi:
    """A small JSON caller for tests: ``(status, body)`` for each request."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url
        self.token = ""

    async def login(self, username: str = IM_USER, password: str = IM_PASSWORD) -> dict[str, Any]:
        """Log in, keep the access token, return the whole answer."""
        status, body = await self.call(
            "POST", "/api/login", {"username": username, "password": password}, auth=False
        )
        assert status == 200, (status, body)
        self.token = body["access_token"]
        answer: dict[str, Any] = body
        return answer

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        token: str | None = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.token}"} if auth else {}
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

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the ``/_emulator/`` side door that must succeed."""
        async with self.session.request(
            method, f"{self.base_url}/_emulator/{path}", json=body
        ) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def config(self, name: str = "sample config", *, active: bool = True) -> str:
        """Create a job config; its id."""
        created = await self.ok("POST", "/api/jobconfigs", {"name": name, "active": active})
        config_id: str = created["id"]
        return config_id
