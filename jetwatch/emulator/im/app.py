"""ImEmulatorServer: wires sessions, faults and the run engine into a listening aiohttp app."""

from __future__ import annotations

from types import TracebackType

import structlog
from aiohttp import web

from jetwatch.emulator.admin import RequestStats
from jetwatch.emulator.faults import FaultInjector
from jetwatch.emulator.im.admin import ImAdminRoutes
from jetwatch.emulator.im.auth import SessionStore
from jetwatch.emulator.im.config import ImEmulatorConfig
from jetwatch.emulator.im.engine import RunEngine
from jetwatch.emulator.im.middleware import make_middlewares
from jetwatch.emulator.im.routes import ImRoutes
from jetwatch.emulator.im.state import ImState
from jetwatch.errors import ConfigError

log = structlog.get_logger(__name__)

_SHUTDOWN_TIMEOUT_S = 5.0
_MAX_BODY_BYTES = 64 * 1024 * 1024  # a run's file list may be long


class ImEmulatorServer:
    """The Integration Manager emulator on a real socket; an async context manager."""

    def __init__(self, config: ImEmulatorConfig) -> None:
        self.config = config
        self.state = ImState()
        self.sessions = SessionStore(config.users, config.token_ttl_s, config.refresh_ttl_s)
        self.faults = FaultInjector()
        self.stats = RequestStats()
        self._engine: RunEngine | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL for clients, e.g. ``http://127.0.0.1:8080``."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(
            self.config.host, self.config.host
        )
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def build_app(self, engine: RunEngine) -> web.Application:
        app = web.Application(
            middlewares=make_middlewares(self.sessions, self.faults, self.stats),
            client_max_size=_MAX_BODY_BYTES,
        )
        app.add_routes(ImRoutes(self.state, self.sessions, engine).routes())
        admin = ImAdminRoutes(self.state, self.sessions, engine, self.faults, self.stats)
        app.add_routes(admin.routes())
        return app

    async def start(self) -> None:
        """Listen; a port already in use is a ConfigError naming it."""
        self._engine = RunEngine(self.config, self.faults)
        runner = web.AppRunner(
            self.build_app(self._engine), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await self._engine.stop()
            address = f"{self.config.host}:{self.config.port}"
            raise ConfigError([("port", f"cannot listen on {address}: {exc.strerror}")]) from exc
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log.info(
            "im_emulator_started",
            url=self.url,
            users=[u.username for u in self.config.users],
            output_dir=str(self.config.output_dir) if self.config.output_dir else None,
        )

    async def stop(self) -> None:
        """Stop listening and abandon unfinished runs; safe to call twice."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        await runner.cleanup()
        if self._engine is not None:
            await self._engine.stop()
        log.info("im_emulator_stopped", url=self.url)

    async def __aenter__(self) -> ImEmulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
