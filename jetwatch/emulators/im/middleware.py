"""Request middlewares of the IM emulator: those of the Jet emulator, with its own bearer auth."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from jetwatch.emulators.common import counting, injecting, json_errors
from jetwatch.emulators.im.auth import SessionStore, User
from jetwatch.emulators.jet.admin import RequestStats
from jetwatch.emulators.jet.auth import TokenRefused
from jetwatch.emulators.jet.faults import FaultInjector
from jetwatch.emulators.jet.validation import ErrorAnswer

USER = web.RequestKey("imemu_user", User)
OPEN_PATHS = frozenset({"/api/login", "/api/login/refresh"})


def is_api_path(path: str) -> bool:
    """Paths that behave like Integration Manager; not the /_emulator side door."""
    return path.startswith("/api/")


def authorizing(sessions: SessionStore) -> Middleware:
    """A live bearer token on every /api call but the login ones (401 otherwise)."""

    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_api_path(request.path) and request.path not in OPEN_PATHS:
            try:
                request[USER] = sessions.check(request.headers.get("Authorization"))
            except TokenRefused as exc:
                raise ErrorAnswer(401, str(exc), {"WWW-Authenticate": "Bearer"}) from None
        return await handler(request)

    return authorize


def make_middlewares(
    sessions: SessionStore, faults: FaultInjector, stats: RequestStats
) -> list[Middleware]:
    """Outermost first, as in the Jet emulator: stats, ``{"message"}`` errors, faults, auth."""
    return [
        counting(stats, is_api_path),
        json_errors,
        injecting(faults, is_api_path),
        authorizing(sessions),
    ]
