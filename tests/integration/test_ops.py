"""The ops server (a real one on port 0) and the loop-lag monitor."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

import aiohttp
import pytest
import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from jetwatch import metrics
from jetwatch.config.settings import parse_listen
from jetwatch.errors import ConfigError
from jetwatch.ops.health import LoopMonitor, Readiness
from jetwatch.ops.server import OpsServer


class _State:
    """What the daemon would expose: a readiness verdict, a status page, a refresh count."""

    def __init__(self) -> None:
        self.verdict = Readiness(True, (), {"folders": {"cams": {"mode": "events"}}})
        self.refreshes = 0

    def readiness(self) -> Readiness:
        return self.verdict

    async def status(self) -> Mapping[str, object]:
        return {"files": {"STABLE": 2, "DONE": 5}, "api": {"ok": True}}

    async def refresh(self) -> None:
        self.refreshes += 1


@pytest.fixture
def state() -> _State:
    """Fresh daemon-like state for one test."""
    return _State()


@pytest.fixture
async def server(state: _State) -> AsyncIterator[OpsServer]:
    """An ops server on a free loopback port."""
    ops = OpsServer(
        "127.0.0.1:0",
        readiness=state.readiness,
        status=state.status,
        loop_monitor=LoopMonitor(),
        refresh=state.refresh,
    )
    async with ops:
        yield ops


async def _get(url: str) -> tuple[int, str, str]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def _get_json(url: str) -> tuple[int, object]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
        return resp.status, await resp.json()


async def test_healthz_ok(server: OpsServer) -> None:
    """/healthz answers 200 with the loop lag while the loop keeps up."""
    status, body = await _get_json(f"{server.url}/healthz")
    assert status == 200
    assert body == {"status": "ok", "loop_lag_s": 0.0}


async def test_healthz_503_when_the_loop_lags(state: _State) -> None:
    """A loop blocked longer than max_lag_s turns /healthz into a 503."""
    monitor = LoopMonitor(interval_s=0.01)
    measuring = asyncio.create_task(monitor.run_once())
    await asyncio.sleep(0)  # let the measurement start its sleep
    time.sleep(0.3)  # block the loop on purpose, as a wedged sync call would
    assert await measuring >= 0.2
    ops = OpsServer(
        "127.0.0.1:0",
        readiness=state.readiness,
        status=state.status,
        loop_monitor=monitor,
        max_lag_s=0.1,
    )
    async with ops:
        status, body = await _get_json(f"{ops.url}/healthz")
    assert status == 503
    assert isinstance(body, dict)
    assert body["status"] == "lagging"
    assert body["loop_lag_s"] >= 0.2


async def test_readyz_ready(server: OpsServer) -> None:
    """/readyz answers 200 with ready true and the details."""
    status, body = await _get_json(f"{server.url}/readyz")
    assert status == 200
    assert body == {"ready": True, "folders": {"cams": {"mode": "events"}}}


async def test_readyz_not_ready(server: OpsServer, state: _State) -> None:
    """/readyz answers 503 with the reasons; details that are not JSON become strings."""
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    state.verdict = Readiness(False, ("folder 'cams': first scan not finished",), {"since": when})
    status, body = await _get_json(f"{server.url}/readyz")
    assert status == 503
    assert body == {
        "ready": False,
        "reasons": ["folder 'cams': first scan not finished"],
        "since": str(when),
    }


async def test_metrics(server: OpsServer, state: _State) -> None:
    """/metrics refreshes on-demand gauges and serves the registry in Prometheus text format."""
    metrics.LOOP_LAG_SECONDS.set(0.25)
    status, content_type, text = await _get(f"{server.url}/metrics")
    assert status == 200
    assert content_type == CONTENT_TYPE_LATEST
    assert state.refreshes == 1
    for name in (
        "jetwatch_files_detected_total",
        "jetwatch_api_requests_total",
        "jetwatch_batches_in_flight",
        "jetwatch_ledger_bytes",
    ):
        assert f"# TYPE {name} " in text
    assert "jetwatch_loop_lag_seconds 0.25" in text.splitlines()


async def test_status(server: OpsServer) -> None:
    """/status serves the status callable as JSON."""
    status, body = await _get_json(f"{server.url}/status")
    assert status == 200
    assert body == {"files": {"STABLE": 2, "DONE": 5}, "api": {"ok": True}}


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("0.0.0.0:9108", ("0.0.0.0", 9108)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9108", ("::1", 9108)),
        ("[::]:65535", ("::", 65535)),
        ("", None),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int] | None) -> None:
    """host:port and [v6]:port parse; an empty string means disabled."""
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen",
    ["9108", "localhost", ":9108", "[::1]", "::1:9108", "host:70000", "host:http", "a b:1"],
)
def test_parse_listen_rejects_bad_syntax(listen: str) -> None:
    """Anything else is a ValueError that names the value."""
    with pytest.raises(ValueError, match="invalid listen address") as info:
        parse_listen(listen)
    assert repr(listen) in str(info.value)


async def test_disabled_server_does_nothing(state: _State) -> None:
    """listen="" starts nothing and has no URL."""
    async with OpsServer(
        "", readiness=state.readiness, status=state.status, loop_monitor=LoopMonitor()
    ) as ops:
        assert ops.url is None


async def test_busy_port_is_a_config_error(server: OpsServer, state: _State) -> None:
    """A port already in use fails start() with a ConfigError naming http.listen."""
    assert server.url is not None
    port = int(server.url.rsplit(":", 1)[1])
    other = OpsServer(
        f"127.0.0.1:{port}",
        readiness=state.readiness,
        status=state.status,
        loop_monitor=LoopMonitor(),
    )
    with pytest.raises(ConfigError) as info:
        await other.start()
    assert info.value.problems[0][0] == "http.listen"
    assert other.url is None


async def test_ipv6_loopback(state: _State) -> None:
    """An IPv6 listen address serves, and the URL brackets the host."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    async with OpsServer(
        "[::1]:0", readiness=state.readiness, status=state.status, loop_monitor=LoopMonitor()
    ) as ops:
        assert ops.url is not None
        assert ops.url.startswith("http://[::1]:")
        status, _ = await _get_json(f"{ops.url}/healthz")
    assert status == 200


async def test_loop_monitor_measures_lag_and_sets_the_gauge() -> None:
    """A blocked loop shows as lag, in the result, the property and the metric."""
    monitor = LoopMonitor(interval_s=0.05)
    measuring = asyncio.create_task(monitor.run_once())
    await asyncio.sleep(0)
    time.sleep(0.3)
    # Still blocked: the overdue measurement already counts before it completes.
    assert monitor.lag_s >= 0.2
    lag_s = await measuring
    assert lag_s >= 0.2
    assert monitor.lag_s == lag_s
    assert not monitor.is_healthy(max_lag_s=0.2)
    assert metrics.REGISTRY.get_sample_value("jetwatch_loop_lag_seconds") == lag_s


async def test_loop_monitor_warns_on_long_lag() -> None:
    """The running monitor logs event_loop_lagging when the loop was blocked over a second."""
    monitor = LoopMonitor(interval_s=0.01)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(monitor.run())
        await asyncio.sleep(0)
        time.sleep(1.1)

        async def warned() -> None:
            while not any(e["event"] == "event_loop_lagging" for e in logs):
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(warned(), 10)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


def test_loop_monitor_rejects_bad_interval() -> None:
    """A non-positive interval is a ValueError."""
    with pytest.raises(ValueError, match="interval_s"):
        LoopMonitor(interval_s=0)
