"""Request middlewares of the emulator: stats, JSON errors, fault injection, bearer auth."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jetwatch.emulator.admin import RequestStats
from jetwatch.emulator.auth import TokenRefused, TokenStore, is_allowed
from jetwatch.emulator.faults import RETRY_AFTER_STATUSES, DropPhase, FaultInjector
from jetwatch.emulator.validation import ApiError

log = structlog.get_logger(__name__)

DROPPED = web.RequestKey("jetemu_dropped", bool)


def is_api_path(path: str) -> bool:
    """Paths that behave like Jet (auth, faults, stats); not the /_emulator side door."""
    return path == "/oauth/token" or path.startswith("/v1/")


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


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error answer is ``{"message": ...}``, as third-party clients of Jet expect."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response({"message": exc.message}, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:  # the router's 404 / 405
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response({"message": exc.reason}, status=exc.status, headers=headers)
    except Exception:
        log.exception("emulator_handler_failed", path=request.path)
        return web.json_response({"message": "internal emulator error"}, status=500)


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


def authorizing(tokens: TokenStore) -> Middleware:
    """Bearer token on every /v1 call (401), then the role's permission (403)."""

    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            try:
                grant = tokens.check(request.headers.get("Authorization"))
            except TokenRefused as exc:
                raise ApiError(401, str(exc), {"WWW-Authenticate": "Bearer"}) from None
            if not is_allowed(grant.role, request.method, request.path):
                raise ApiError(403, f"role {grant.role} may not {request.method} {request.path}")
        return await handler(request)

    return authorize


def make_middlewares(
    tokens: TokenStore, faults: FaultInjector, stats: RequestStats
) -> list[Middleware]:
    """Outermost first: stats see every answer, errors become ``{"message"}``, faults come
    before auth (a rate limiter answers before it reads tokens)."""
    return [counting(stats), json_errors, injecting(faults), authorizing(tokens)]
