"""The ``/_emulator/...`` side door: what the emulator received, request stats, faults."""

from __future__ import annotations

from collections import Counter

import structlog
from aiohttp import web

from jetwatch.emulators.jet.faults import FaultInjector, parse_faults
from jetwatch.emulators.jet.render import received_json
from jetwatch.emulators.jet.state import EmulatorState
from jetwatch.emulators.jet.validation import bad_request

log = structlog.get_logger(__name__)

ADMIN_PREFIX = "/_emulator/"


class RequestStats:
    """Counts API requests by ``METHOD route-template`` and by answer status."""

    def __init__(self) -> None:
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.dropped = 0

    def record(self, method: str, route: str, status: int | None) -> None:
        """``status`` None means the connection was dropped without an answer."""
        self.by_route[f"{method} {route}"] += 1
        if status is None:
            self.dropped += 1
        else:
            self.by_status[str(status)] += 1

    def to_json(self) -> dict[str, object]:
        return {
            "total": sum(self.by_route.values()),
            "dropped": self.dropped,
            "requests": dict(sorted(self.by_route.items())),
            "statuses": dict(sorted(self.by_status.items())),
        }


class AdminRoutes:
    """Handlers under ``/_emulator/`` (no auth, no faults: they observe and steer)."""

    def __init__(self, state: EmulatorState, faults: FaultInjector, stats: RequestStats) -> None:
        self._state = state
        self._faults = faults
        self._stats = stats

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(ADMIN_PREFIX + "deliveries", self.list_received),
            web.get(ADMIN_PREFIX + "stats", self.get_stats),
            web.get(ADMIN_PREFIX + "faults", self.get_faults),
            web.post(ADMIN_PREFIX + "faults", self.set_faults),
        ]

    async def list_received(self, request: web.Request) -> web.Response:
        items = [received_json(d) for d in self._state.deliveries.values()]
        return web.json_response({"items": items})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._stats.to_json())

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._faults.config.to_json())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("body must be valid JSON") from None
        config = parse_faults(body)
        self._faults.configure(config)
        log.info("emulator_faults_set", **config.to_json())
        return web.json_response(config.to_json())
