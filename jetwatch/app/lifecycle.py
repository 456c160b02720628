"""Stop and reload requests: signal handlers that only set flags, and the absolute deadline."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time

import structlog

log = structlog.get_logger(__name__)

EXIT_OVERRAN = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Lifecycle:
    """What the daemon was asked to do: stop, stop *now* (second request), reload.

    With ``hard_exit`` (a real ``jetwatch run`` process, never in-process use), a deadline
    is absolute: a worker thread or a wedged call that outlives it ends in ``os._exit``.
    The ledger commits every transition before acting, so that is as safe as ``kill -9``.
    """

    def __init__(self, *, hard_exit: bool = False) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.reload = asyncio.Event()
        self.requests = 0
        self._hard_exit = hard_exit
        self._timer: threading.Timer | None = None
        self._exit_at = float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None

    def request_stop(self) -> None:
        """First call: graceful shutdown; any later one: cancel everything now."""
        self.requests += 1
        self.stop.set()
        if self.requests > 1:
            self.force.set()

    def request_reload(self) -> None:
        self.reload.set()

    def install_signals(self) -> None:
        """SIGTERM/SIGINT request a stop, SIGHUP a reload; on the running loop."""
        self._loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self.request_stop)
        self._loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def remove_signals(self) -> None:
        if self._loop is not None:
            for sig in (*_STOP_SIGNALS, signal.SIGHUP):
                self._loop.remove_signal_handler(sig)
            self._loop = None

    async def wait_stop_or_reload(self) -> None:
        """Return as soon as a stop or a reload was requested."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (self.stop, self.reload)]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def exit_within(self, seconds: float) -> None:
        """Make sure the process is gone ``seconds`` from now (no-op without hard_exit)."""
        if not self._hard_exit or time.monotonic() + seconds >= self._exit_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._exit_at = time.monotonic() + seconds
        self._timer = threading.Timer(seconds, _exit_now, args=(seconds,))
        self._timer.daemon = True
        self._timer.start()


def _exit_now(after_s: float) -> None:
    """Runs in the timer thread when a deadline passed and the process is still up."""
    log.error("shutdown_overran", after_s=after_s, effect="exiting now; the ledger is consistent")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_OVERRAN)
