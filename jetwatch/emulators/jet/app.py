"""EmulatorServer: wires state, tokens, faults and the copy engine into a listening app."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import structlog
from aiohttp import web

from jetwatch.emulators.common import MAX_BODY_BYTES, AppServer
from jetwatch.emulators.jet.admin import AdminRoutes, RequestStats
from jetwatch.emulators.jet.auth import TokenStore
from jetwatch.emulators.jet.config import EmulatorConfig
from jetwatch.emulators.jet.faults import FaultInjector
from jetwatch.emulators.jet.middleware import make_middlewares
from jetwatch.emulators.jet.routes import JetRoutes
from jetwatch.emulators.jet.state import EmulatorState
from jetwatch.emulators.jet.transfers import TransferEngine
from jetwatch.errors import ConfigError

log = structlog.get_logger(__name__)


class EmulatorServer(AppServer):
    """The Jet API emulator on a real socket; an async context manager."""

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config.host, config.port)
        self.config = config
        self.state = EmulatorState(config.state_dir, save_interval_s=config.save_interval_s)
        self.tokens = TokenStore(config.clients, config.token_ttl_s)
        self.faults = FaultInjector()
        self.stats = RequestStats()
        self._engine: TransferEngine | None = None
        self._saver: asyncio.Task[None] | None = None

    def build_app(self, engine: TransferEngine) -> web.Application:
        app = web.Application(
            middlewares=make_middlewares(self.tokens, self.faults, self.stats),
            client_max_size=MAX_BODY_BYTES,
        )
        app.add_routes(JetRoutes(self.state, self.tokens, engine, self.config.assume).routes())
        app.add_routes(AdminRoutes(self.state, self.faults, self.stats).routes())
        return app

    async def start(self) -> None:
        """Load the state, listen, and resume deliveries a previous run left unfinished."""
        await asyncio.to_thread(self.state.load)
        self.state.mark_dirty()  # write soon: a fresh state, or proof the dir is writable
        self._engine = TransferEngine(
            self.state,
            self.faults,
            bandwidth_bps=self.config.bandwidth_bps,
            max_active_transfers=self.config.max_active_transfers,
            max_objects_per_transfer=self.config.max_objects_per_transfer,
            paused_backlog=self.config.paused_backlog,
        )
        await self.listen(self.build_app(self._engine), self._tls_context())
        resumed = self._engine.resume_pending()
        self._saver = asyncio.create_task(self.state.run_saver(), name="emulator-state-saver")
        log.info(
            "emulator_started",
            url=self.url,
            state_dir=str(self.config.state_dir) if self.config.state_dir else None,
            clients=[c.client_id for c in self.config.clients],
            resumed_deliveries=resumed,
            assumptions=self.config.assume.enabled(),
            paused_backlog=self.config.paused_backlog.value,
        )

    def _tls_context(self) -> ssl.SSLContext | None:
        """HTTPS when a certificate is configured (tests of private CAs and proxies)."""
        cert, key = self.config.tls_cert, self.config.tls_key
        if cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([("tls_cert", f"cannot load {cert}: {exc}")]) from exc
        return context

    async def stop(self) -> None:
        """Stop listening, abandon running copies, write the state; safe to call twice."""
        if not await self.close():
            return
        if self._engine is not None:
            await self._engine.stop()
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
        await self.state.flush()
        log.info("emulator_stopped", url=self.url)
