"""The operations HTTP server: the console at /, /healthz, /readyz, /metrics and /status.

It reads what the daemon gives it; the only writes are the console's two actions (retry
failed files, re-check a held folder), POSTs that need ``[http] token`` and are off unless
``[http] actions`` is on. A token in a form field or an ``Authorization: Bearer`` header,
never in a cookie, so another site cannot make a browser send it (no CSRF).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from types import TracebackType
from typing import Protocol
from urllib.parse import urlencode

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from jetwatch import metrics
from jetwatch.config.settings import parse_listen
from jetwatch.errors import ConfigError
from jetwatch.ops import console
from jetwatch.ops.cache import StatusCache
from jetwatch.ops.health import LoopMonitor, Readiness

__all__ = ["LoopMonitor", "OpsServer", "Readiness", "parse_listen"]

log = structlog.get_logger(__name__)

# Details may hold timestamps or paths; a status page should show them, not fail on them.
_dumps = functools.partial(json.dumps, default=str)
_ASSETS = {
    "console.css": "text/css",
    "console.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_DONE = {
    "retried": "{n} failed file(s) of folder {folder!r} queued again.",
    "rechecked": "Re-checking folder {folder!r} and its target now.",
}


class ConsoleActions(Protocol):
    """What the console's buttons do; None for a folder the daemon does not know."""

    async def retry_failed(self, folder: str) -> int | None: ...
    async def recheck(self, folder: str) -> bool: ...


def _load_assets() -> dict[str, bytes]:
    static = resources.files("jetwatch.ops").joinpath("static")
    return {name: static.joinpath(name).read_bytes() for name in _ASSETS}


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
        actions: ConsoleActions | None = None,
        token: SecretStr | None = None,
        status_ttl_s: float = 1.0,
    ) -> None:
        self._listen = listen
        self._address = parse_listen(listen)
        self._readiness = readiness
        self._status = status
        self._loop_monitor = loop_monitor
        self._max_lag_s = max_lag_s
        self._refresh = refresh
        # /, /?part=live and /status share one status document, built at most once a second.
        self._cache = StatusCache(status, ttl_s=status_ttl_s)
        self._actions = actions if token is not None else None
        self._token = token
        self._assets: dict[str, bytes] = {}
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
        app.router.add_get("/", self._console)
        app.router.add_get("/static/{name}", self._asset)
        app.router.add_post(console.RETRY_PATH, functools.partial(self._act, "retried"))
        app.router.add_post(console.RECHECK_PATH, functools.partial(self._act, "rechecked"))
        return app

    async def start(self) -> None:
        """Bind and serve; a no-op when disabled. A busy port is a ConfigError."""
        if self._address is None or self._runner is not None:
            return
        host, port = self._address
        self._assets = await asyncio.to_thread(_load_assets)
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
        await self._cache.aclose()
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
        # Off the loop: a registry of many folders' series takes milliseconds to format.
        payload = await asyncio.to_thread(generate_latest, metrics.REGISTRY)
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status_page(self, request: web.Request) -> web.Response:
        return web.json_response(dict(await self._cache.get()), dumps=_dumps)

    async def _console(self, request: web.Request) -> web.Response:
        # The buttons show only where they work: with actions on and a token configured.
        data = {**await self._cache.get(), "actions": self._actions is not None}
        # Rendered off the loop: a page of many folders and deliveries is milliseconds of work.
        if request.query.get("part") == "live":
            text = await asyncio.to_thread(console.render_live, data)
        else:
            text = await asyncio.to_thread(
                functools.partial(console.render_page, data, flash=_flash(request.query))
            )
        return web.Response(
            text=text, content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS
        )

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = self._assets.get(name)
        if body is None:
            raise web.HTTPNotFound()
        headers = {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"}
        return web.Response(body=body, content_type=_ASSETS[name], headers=headers)

    async def _act(self, done: str, request: web.Request) -> web.Response:
        """One console action: the token first, then the folder, then a redirect back."""
        if self._actions is None or self._token is None:
            why = "console actions are off: set [http] actions = true and a token"
            return web.Response(status=403, text=why)
        form = await request.post()
        given = str(form.get("token") or "")
        bearer = request.headers.get("Authorization", "")
        if not given and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        expected = self._token.get_secret_value()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("console_action_refused", action=done, remote=request.remote)
            return web.Response(status=403, text="wrong or missing token")
        folder = str(form.get("folder") or "")
        count: int | None = None
        if done == "retried":
            count = await self._actions.retry_failed(folder)
            known = count is not None
        else:
            known = await self._actions.recheck(folder)
        if not known:
            return web.Response(status=404, text=f"no folder named {folder!r}")
        log.info("console_action", action=done, folder=folder, files=count)
        self._cache.invalidate()  # the page it redirects to shows the effect
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"ok": True, "action": done, "folder": folder, "files": count})
        query = urlencode({"done": done, "folder": folder, "n": count or 0})
        raise web.HTTPSeeOther(f"/?{query}")


def _flash(query: Mapping[str, str]) -> str:
    """The line shown after an action (from fixed wording, never the query's own text)."""
    template = _DONE.get(query.get("done", ""))
    if template is None:
        return ""
    n = query.get("n", "0")
    return template.format(folder=query.get("folder", ""), n=int(n) if n.isdigit() else 0)
