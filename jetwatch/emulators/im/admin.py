"""The IM emulator's ``/_emulator/...`` side door: runs received, stats, faults, knobs."""

from __future__ import annotations

import structlog
from aiohttp import web

from jetwatch.emulators.im.auth import SessionStore
from jetwatch.emulators.im.engine import RunEngine
from jetwatch.emulators.im.routes import read_object
from jetwatch.emulators.im.state import ImState, im_date, received_json
from jetwatch.emulators.jet.admin import RequestStats
from jetwatch.emulators.jet.faults import FaultInjector, parse_faults
from jetwatch.emulators.jet.validation import ErrorAnswer, bad_request

log = structlog.get_logger(__name__)

PREFIX = "/_emulator/"


class ImAdminRoutes:
    """Handlers under ``/_emulator/`` (no auth, no faults: they observe and steer)."""

    def __init__(
        self,
        state: ImState,
        sessions: SessionStore,
        engine: RunEngine,
        faults: FaultInjector,
        stats: RequestStats,
    ) -> None:
        self._state = state
        self._sessions = sessions
        self._engine = engine
        self._faults = faults
        self._stats = stats

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX + "runs", self.list_runs),
            web.post(PREFIX + "runs/{id}/status", self.set_status),
            web.get(PREFIX + "stats", self.get_stats),
            web.get(PREFIX + "faults", self.get_faults),
            web.post(PREFIX + "faults", self.set_faults),
            web.post(PREFIX + "tokens/expire", self.expire_tokens),
            web.post(PREFIX + "hold", self.set_hold),
        ]

    async def list_runs(self, request: web.Request) -> web.Response:
        """Every run ever received, oldest first, with its files and outputs."""
        return web.json_response({"items": [received_json(r) for r in self._state.runs.values()]})

    async def set_status(self, request: web.Request) -> web.Response:
        """Force a run's status (CANCELLED, or any string to test unknown statuses)."""
        run = self._state.runs.get(request.match_info["id"])
        if run is None:
            raise ErrorAnswer(404, "no such run")
        body = await read_object(request)
        status, message = body.get("status"), body.get("message")
        if not isinstance(status, str) or not status:
            raise bad_request("status must be a non-empty string")
        if message is not None and not isinstance(message, str):
            raise bad_request("message must be a string")
        run.status = status
        run.error_message = message if message is not None else run.error_message
        run.finished = im_date()
        log.info("im_emulator_status_forced", run_id=run.run_id, status=status)
        return web.json_response(received_json(run))

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._stats.to_json())

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._faults.config.to_json())

    async def set_faults(self, request: web.Request) -> web.Response:
        """Same body as the Jet emulator: status_rates, latency_ms, drop_rate, fail_paths..."""
        config = parse_faults(await read_object(request))
        self._faults.configure(config)
        log.info("im_emulator_faults_set", **config.to_json())
        return web.json_response(config.to_json())

    async def expire_tokens(self, request: web.Request) -> web.Response:
        """Expire every access token now (``{"refresh": true}``: refresh tokens too)."""
        body = await read_object(request, optional=True)
        refresh_too = body.get("refresh", False)
        if not isinstance(refresh_too, bool):
            raise bad_request("refresh must be true or false")
        count = self._sessions.expire_all(refresh_too=refresh_too)
        return web.json_response({"expired": count})

    async def set_hold(self, request: web.Request) -> web.Response:
        """``{"hold": true}`` keeps runs QUEUED until ``{"hold": false}``."""
        hold = (await read_object(request)).get("hold")
        if not isinstance(hold, bool):
            raise bad_request("hold must be true or false")
        self._engine.hold(hold)
        return web.json_response({"hold": self._engine.holding})
