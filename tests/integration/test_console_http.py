"""The console over HTTP (a real ops server on port 0): the page, its assets, the two actions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from jetwatch.ops.health import LoopMonitor, Readiness
from jetwatch.ops.server import OpsServer
from tests.fixtures.console import sample

TOKEN = "a-console-token-of-24ch"


class _Actions:
    def __init__(self) -> None:
        self.retried: list[str] = []
        self.rechecked: list[str] = []

    async def retry_failed(self, folder: str) -> int | None:
        if folder != "in":
            return None
        self.retried.append(folder)
        return 3

    async def recheck(self, folder: str) -> bool:
        self.rechecked.append(folder)
        return folder == "in"


class _Daemon:
    def __init__(self) -> None:
        self.builds = 0

    async def status(self) -> Mapping[str, object]:
        self.builds += 1
        return sample()


async def _server(daemon: _Daemon, actions: _Actions | None, token: str | None) -> OpsServer:
    ops = OpsServer(
        "127.0.0.1:0",
        readiness=lambda: Readiness(True, (), {}),
        status=daemon.status,
        loop_monitor=LoopMonitor(),
        actions=actions,
        token=None if token is None else SecretStr(token),
    )
    await ops.start()
    return ops


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


async def test_page_assets_and_status_share_one_build(http: aiohttp.ClientSession) -> None:
    """/, /?part=live and /status within a second build the status once; assets are served."""
    daemon = _Daemon()
    ops = await _server(daemon, None, None)
    try:
        async with http.get(f"{ops.url}/") as r:
            assert r.status == 200
            assert r.content_type == "text/html"
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["Cache-Control"] == "no-store"
            page = await r.text()
        assert '<div id="live"' in page
        async with http.get(f"{ops.url}/?part=live") as r:
            live = await r.text()
        assert live.startswith("<header>")
        assert "<html" not in live
        async with http.get(f"{ops.url}/status") as r:
            body = await r.json()
        assert body["in_flight"][0]["progress"]["fraction"] == 0.4
        assert daemon.builds == 1
        for name, kind in (("console.css", "text/css"), ("console.js", "text/javascript"),
                           ("favicon.svg", "image/svg+xml")):  # fmt: skip
            async with http.get(f"{ops.url}/static/{name}") as r:
                assert r.status == 200
                assert r.content_type == kind
                assert len(await r.read()) > 100
        async with http.get(f"{ops.url}/static/../server.py") as r:
            assert r.status == 404
    finally:
        await ops.stop()


async def _post(
    http: aiohttp.ClientSession, url: str, data: dict[str, str], **kw: Any
) -> tuple[int, str, str]:
    async with http.post(url, data=data, allow_redirects=False, **kw) as r:
        return r.status, r.headers.get("Location", ""), await r.text()


async def test_actions_need_the_token(http: aiohttp.ClientSession) -> None:
    """No token, a wrong one: 403 and nothing done; the right one: done, back to the page."""
    actions, daemon = _Actions(), _Daemon()
    ops = await _server(daemon, actions, TOKEN)
    retry, recheck = f"{ops.url}/actions/retry-failed", f"{ops.url}/actions/recheck"
    try:
        assert (await _post(http, retry, {"folder": "in"}))[0] == 403
        assert (await _post(http, retry, {"folder": "in", "token": "wrong"}))[0] == 403
        assert actions.retried == []
        async with http.get(f"{ops.url}/status"):
            pass
        status, location, _ = await _post(http, retry, {"folder": "in", "token": TOKEN})
        assert status == 303
        assert location == "/?done=retried&folder=in&n=3"
        async with http.get(ops.url + location) as r:
            page = await r.text()
        assert daemon.builds == 2  # not the status from before the action
        assert "3 failed file(s) of folder &#x27;in&#x27; queued again." in page
        assert "Retry the 1 failed file(s)" in page  # buttons shown: actions are on
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        async with http.post(recheck, data={"folder": "in"}, headers=headers) as r:
            assert r.status == 200
            assert await r.json() == {
                "ok": True,
                "action": "rechecked",
                "folder": "in",
                "files": None,
            }
        assert actions.rechecked == ["in"]
        status, _, text = await _post(http, recheck, {"folder": "nope", "token": TOKEN})
        assert status == 404
        assert "no folder named 'nope'" in text
        async with http.get(f"{ops.url}/actions/recheck") as r:
            assert r.status == 405  # state changes are POSTs only
    finally:
        await ops.stop()


async def test_actions_are_off_without_a_token(http: aiohttp.ClientSession) -> None:
    actions = _Actions()
    ops = await _server(_Daemon(), actions, None)
    try:
        status, _, text = await _post(http, f"{ops.url}/actions/retry-failed", {"folder": "in"})
        assert status == 403
        assert "actions are off" in text
        async with http.get(f"{ops.url}/") as r:
            assert "<form" not in await r.text()
        assert actions.retried == []
    finally:
        await ops.stop()
