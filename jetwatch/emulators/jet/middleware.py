"""Request middlewares of the Jet emulator: stats, JSON errors, fault injection, bearer auth."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jetwatch.emulators.common import counting, injecting, json_errors
from jetwatch.emulators.jet.admin import RequestStats
from jetwatch.emulators.jet.auth import TokenRefused, TokenStore, is_allowed
from jetwatch.emulators.jet.faults import FaultInjector
from jetwatch.emulators.jet.validation import ErrorAnswer


def is_api_path(path: str) -> bool:
    """Paths that behave like Jet (auth, faults, stats); not the /_emulator side door."""
    return path == "/oauth/token" or path.startswith("/v1/")


def authorizing(tokens: TokenStore) -> Middleware:
    """Bearer token on every /v1 call (401), then the role's permission (403)."""

    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            try:
                grant = tokens.check(request.headers.get("Authorization"))
            except TokenRefused as exc:
                raise ErrorAnswer(401, str(exc), {"WWW-Authenticate": "Bearer"}) from None
            if not is_allowed(grant.role, request.method, request.path):
                raise ErrorAnswer(403, f"role {grant.role} may not {request.method} {request.path}")
        return await handler(request)

    return authorize


def make_middlewares(
    tokens: TokenStore, faults: FaultInjector, stats: RequestStats
) -> list[Middleware]:
    """Outermost first: stats see every answer, errors become ``{"message"}``, faults come
    before auth (a rate limiter answers before it reads tokens)."""
    return [
        counting(stats, is_api_path),
        json_errors,
        injecting(faults, is_api_path),
        authorizing(tokens),
    ]
