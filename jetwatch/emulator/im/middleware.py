"""Request middlewares of the IM emulator: stats, JSON errors, fault injection, bearer auth."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jetwatch.emulator.admin import RequestStats
from jetwatch.emulator.auth import TokenRefused
from jetwatch.emulator.faults import RETRY_AFTER_STATUSES, DropPhase, FaultInjector
from jetwatch.emulator.im.auth import SessionStore, User
from jetwatch.emulator.middleware import json_errors
from jetwatch.emulator.validation import ApiError

DROPPED = web.RequestKey("imemu_dropped", bool)
USER = web.RequestKey("imemu_user", User)
OPEN_PATHS = frozenset({"/api/login", "/api/login/refresh"})


def is_api_path(path: str) -> bool:
    """Paths that behave like Integration Manager; not the /_emulator side door."""
    return path.startswith("/api/")


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer; aiohttp then fails quietly to write one."""
    request[DROPPED] = True
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


def counting(stats: RequestStats) -> Middleware:
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


def injecting(faults: FaultInjector) -> Middleware:
    """Latency, dropped connections and error answers on API paths, as configured."""

    @web.middleware
    async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_api_path(request.path):
            return await handler(request)
        if faults.config.latency_ms > 0:
            await asyncio.sleep(faults.config.latency_ms / 1000)
        drop = faults.pick_drop()
        if drop is DropPhase.BEFORE:
            return _drop(request)
        status = faults.pick_status()
        if status is not None:
            headers = {"Retry-After": "1"} if status in RETRY_AFTER_STATUSES else {}
            raise ApiError(status, f"emulated fault {status}", headers)
        response = await handler(request)
        # AFTER: the request took effect but the client never hears so (outcome unknown).
        return _drop(request) if drop is DropPhase.AFTER else response

    return inject


def authorizing(sessions: SessionStore) -> Middleware:
    """A live bearer token on every /api call but the login ones (401 otherwise)."""

    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_api_path(request.path) and request.path not in OPEN_PATHS:
            try:
                request[USER] = sessions.check(request.headers.get("Authorization"))
            except TokenRefused as exc:
                raise ApiError(401, str(exc), {"WWW-Authenticate": "Bearer"}) from None
        return await handler(request)

    return authorize


def make_middlewares(
    sessions: SessionStore, faults: FaultInjector, stats: RequestStats
) -> list[Middleware]:
    """Outermost first, as in the Jet emulator: stats, ``{"message"}`` errors, faults, auth."""
    return [counting(stats), json_errors, injecting(faults), authorizing(sessions)]
