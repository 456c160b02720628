"""ImEmulatorServer: wires sessions, faults and the run engine into a listening aiohttp app."""

from __future__ import annotations

import structlog
from aiohttp import web

from jetwatch.emulators.common import MAX_BODY_BYTES, AppServer
from jetwatch.emulators.im.admin import ImAdminRoutes
from jetwatch.emulators.im.auth import SessionStore
from jetwatch.emulators.im.config import ImEmulatorConfig
from jetwatch.emulators.im.engine import RunEngine
from jetwatch.emulators.im.middleware import make_middlewares
from jetwatch.emulators.im.routes import ImRoutes
from jetwatch.emulators.im.state import ImState
from jetwatch.emulators.jet.admin import RequestStats
from jetwatch.emulators.jet.faults import FaultInjector

log = structlog.get_logger(__name__)


class ImEmulatorServer(AppServer):
    """The Integration Manager emulator on a real socket; an async context manager."""

    def __init__(self, config: ImEmulatorConfig) -> None:
        super().__init__(config.host, config.port)
        self.config = config
        self.state = ImState()
        self.sessions = SessionStore(config.users, config.token_ttl_s, config.refresh_ttl_s)
        self.faults = FaultInjector()
        self.stats = RequestStats()
        self._engine: RunEngine | None = None

    def build_app(self, engine: RunEngine) -> web.Application:
        app = web.Application(
            middlewares=make_middlewares(self.sessions, self.faults, self.stats),
            client_max_size=MAX_BODY_BYTES,
        )
        app.add_routes(ImRoutes(self.state, self.sessions, engine).routes())
        admin = ImAdminRoutes(self.state, self.sessions, engine, self.faults, self.stats)
        app.add_routes(admin.routes())
        return app

    async def start(self) -> None:
        """Listen; a port already in use is a ConfigError naming it."""
        self._engine = RunEngine(self.config, self.faults)
        try:
            await self.listen(self.build_app(self._engine))
        except BaseException:
            await self._engine.stop()
            raise
        log.info(
            "im_emulator_started",
            url=self.url,
            users=[u.username for u in self.config.users],
            output_dir=str(self.config.output_dir) if self.config.output_dir else None,
        )

    async def stop(self) -> None:
        """Stop listening and abandon unfinished runs; safe to call twice."""
        if not await self.close():
            return
        if self._engine is not None:
            await self._engine.stop()
        log.info("im_emulator_stopped", url=self.url)
