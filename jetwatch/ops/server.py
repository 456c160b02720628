"""The operations HTTP server: /healthz, /readyz, /metrics and /status; it reads, never drives."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jetwatch import metrics
from jetwatch.config.settings import parse_listen
from jetwatch.errors import ConfigError
from jetwatch.ops.health import LoopMonitor, Readiness

__all__ = ["LoopMonitor", "OpsServer", "Readiness", "parse_listen"]

log = structlog.get_logger(__name__)

# Details may hold timestamps or paths; a status page should show them, not fail on them.
_dumps = functools.partial(json.dumps, default=str)


class OpsServer:
    """Serves health, readiness, metrics and status from callables the daemon provides."""

    def __init__(
        self,
        listen: str,
        *,
        readiness: Callable[[], Readiness],
        status: Callable[[], Awaitable[Mapping[str, object]]],
        loop_monitor: LoopMonitor,
        max_lag_s: float = 5.0,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._listen = listen
        self._address = parse_listen(listen)
        self._readiness = readiness
        self._status = status
        self._loop_monitor = loop_monitor
        self._max_lag_s = max_lag_s
        self._refresh = refresh
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str | None:
        """Base URL once started ("http://127.0.0.1:PORT"); None when disabled or stopped."""
        return self._url

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status_page)
        return app

    async def start(self) -> None:
        """Bind and serve; a no-op when disabled. A busy port is a ConfigError."""
        if self._address is None or self._runner is not None:
            return
        host, port = self._address
        # No access log: health probes every few seconds would drown the real events.
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                [("http.listen", f"cannot listen on {self._listen}: {exc.strerror or exc}")]
            ) from exc
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._url = (
            f"http://[{host}]:{bound_port}" if ":" in host else f"http://{host}:{bound_port}"
        )
        log.info("ops_server_started", url=self._url)

    async def stop(self) -> None:
        """Stop serving; safe to call twice."""
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()
            log.info("ops_server_stopped")

    async def __aenter__(self) -> OpsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _healthz(self, request: web.Request) -> web.Response:
        lag_s = self._loop_monitor.lag_s
        if lag_s < self._max_lag_s:
            return web.json_response({"status": "ok", "loop_lag_s": lag_s})
        body = {"status": "lagging", "loop_lag_s": lag_s, "max_lag_s": self._max_lag_s}
        return web.json_response(body, status=503)

    async def _readyz(self, request: web.Request) -> web.Response:
        verdict = self._readiness()
        body: dict[str, object] = {"ready": verdict.ready}
        if not verdict.ready:
            body["reasons"] = list(verdict.reasons)
        body.update((k, v) for k, v in verdict.details.items() if k not in body)
        return web.json_response(body, status=200 if verdict.ready else 503, dumps=_dumps)

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._refresh is not None:
            await self._refresh()
        payload = generate_latest(metrics.REGISTRY)
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status_page(self, request: web.Request) -> web.Response:
        return web.json_response(dict(await self._status()), dumps=_dumps)
