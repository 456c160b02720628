"""What the Jet and Integration Manager emulators share: middlewares, the server, CLI glue.

Each emulator says which paths are its API (``is_api_path``); only those are counted and
get faults, never the ``/_emulator/`` side door.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jetwatch.emulators.jet.admin import RequestStats
from jetwatch.emulators.jet.faults import RETRY_AFTER_STATUSES, DropPhase, FaultInjector
from jetwatch.emulators.jet.validation import ErrorAnswer
from jetwatch.errors import ConfigError

log = structlog.get_logger(__name__)

DROPPED = web.RequestKey("emulator_dropped", bool)
SHUTDOWN_TIMEOUT_S = 5.0
# Neither API documents a body limit (objects per delivery, files per run); aiohttp's 1 MiB
# default would invent one.
MAX_BODY_BYTES = 64 * 1024 * 1024

PathTest = Callable[[str], bool]


# ---- middlewares -----------------------------------------------------------------------


def drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer; aiohttp then fails quietly to write one."""
    request[DROPPED] = True
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


def counting(stats: RequestStats, is_api_path: PathTest) -> Middleware:
    """Count API requests by route template and answer (None when dropped)."""

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_api_path(request.path):
            return await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "<unknown>"
        response = await handler(request)
        stats.record(request.method, route, None if request.get(DROPPED) else response.status)
        return response

    return count


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answer is ``{"message": ...}``, as third-party clients expect."""
    try:
        return await handler(request)
    except ErrorAnswer as exc:
        return web.json_response({"message": exc.message}, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:  # the router's 404 / 405
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response({"message": exc.reason}, status=exc.status, headers=headers)
    except ConnectionResetError:
        # The client went away mid-request (a killed daemon): nothing was done, nobody listens.
        log.info("emulator_client_gone", path=request.path)
        return web.Response(status=500)
    except Exception:
        log.exception("emulator_handler_failed", path=request.path)
        return web.json_response({"message": "internal emulator error"}, status=500)


def injecting(faults: FaultInjector, is_api_path: PathTest) -> Middleware:
    """Latency, dropped connections and error answers on API paths, as configured."""

    @web.middleware
    async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_api_path(request.path) or not faults.applies_to(request.method):
            return await handler(request)
        config = faults.config
        latency_after = faults.latency_after()
        if config.latency_ms > 0 and not latency_after:
            await asyncio.sleep(config.latency_ms / 1000)
        drop = faults.pick_drop()
        if drop is DropPhase.BEFORE:
            return drop_connection(request)
        status = faults.pick_status()
        if status is not None:
            headers = {"Retry-After": "1"} if status in RETRY_AFTER_STATUSES else {}
            raise ErrorAnswer(status, f"emulated fault {status}", headers)
        response = await handler(request)
        if config.latency_ms > 0 and latency_after:
            # The request took effect; its answer is late (a crash now leaves it in doubt).
            await asyncio.sleep(config.latency_ms / 1000)
        # AFTER: the request took effect but the client never hears so (outcome unknown).
        return drop_connection(request) if drop is DropPhase.AFTER else response

    return inject


# ---- the listening server --------------------------------------------------------------


def base_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL clients use for a server listening on ``host`` (wildcards mean loopback)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class AppServer:
    """An aiohttp application on a real socket; subclasses build the app in ``start``."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._wanted_port = port
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._tls: ssl.SSLContext | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL for clients, e.g. ``http://127.0.0.1:8080`` (https when serving TLS)."""
        return base_url(self._host, self.port, "https" if self._tls else "http")

    async def listen(self, app: web.Application, tls: ssl.SSLContext | None = None) -> None:
        """Serve ``app`` (over TLS with ``tls``); a port already in use is a ConfigError."""
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        self._tls = tls
        site = web.TCPSite(runner, self._host, self._wanted_port, ssl_context=tls)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            address = f"{self._host}:{self._wanted_port}"
            raise ConfigError([("port", f"cannot listen on {address}: {exc.strerror}")]) from exc
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> bool:
        """Stop listening; False when it was not listening (stop is safe to call twice)."""
        if self._runner is None:
            return False
        runner, self._runner = self._runner, None
        await runner.cleanup()
        return True

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        await self.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


# ---- command line ----------------------------------------------------------------------


def number_arg(
    kind: type[int] | type[float], minimum: float, what: str
) -> Callable[[str], int | float]:
    """An argparse ``type`` for a number of at least ``minimum``."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be at least {minimum}")
        return value

    return parse


def spec_arg(parse_spec: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` from a parser raising ValueError (``ID:SECRET`` options)."""

    def parse(text: str) -> Any:
        try:
            return parse_spec(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


async def serve_until_signal(server: AbstractAsyncContextManager[Any], stopping_event: str) -> int:
    """Run ``server`` until SIGINT or SIGTERM; the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    # Handlers go in before the server starts, so a signal never finds the default action.
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        async with server:  # the server logs its start with its URL
            await stop.wait()
            log.info(stopping_event)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return 0
