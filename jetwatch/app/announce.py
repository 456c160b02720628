"""Telling systemd: READY=1 once every folder had its first scan (or is down), then STATUS=."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import structlog

from jetwatch.app import views
from jetwatch.domain.store import LedgerStore
from jetwatch.intake.folder import FolderIntake
from jetwatch.ops.sdnotify import SdNotifier
from jetwatch.targets.registry import TargetRegistry

log = structlog.get_logger(__name__)

STATUS_EVERY_S = 10.0  # how often the STATUS line's counts are read from the ledger
STATUS_CHECK_S = 1.0  # API and job changes show within this
READY_POLL_S = 0.1


class Announcer:
    """Long-lived component: READY once, then a STATUS line whenever it changes."""

    def __init__(
        self,
        notifier: SdNotifier,
        intakes: Mapping[str, FolderIntake],
        registry: TargetRegistry,
        ledger: LedgerStore,
    ) -> None:
        self._notifier = notifier
        self._intakes = intakes  # the daemon's live mapping: a reload changes it
        self._registry = registry
        self._ledger = ledger

    async def run(self) -> None:
        await self._first_scans_or_down()
        self._notifier.ready()
        down = [i.label for i in self._intakes.values() if not i.health.first_scan_done]
        api_ok = self._registry.api_ok
        log.info("ready", folders=len(self._intakes), folders_down=down, api_ok=api_ok)
        if not self._notifier.enabled:
            await asyncio.Event().wait()  # no systemd to tell: no STATUS line to keep fresh
        sent, totals, counted_at = "", await views.state_totals(self._ledger), time.monotonic()
        while True:
            if time.monotonic() - counted_at >= STATUS_EVERY_S:
                totals, counted_at = await views.state_totals(self._ledger), time.monotonic()
            line = views.status_line(self._registry, totals)
            if line != sent:
                self._notifier.status(line)
                sent = line
            await asyncio.sleep(STATUS_CHECK_S)

    async def _first_scans_or_down(self) -> None:
        """A missing share must not hold READY back: systemd would fail the start."""
        # One waiter per intake for the whole wait (200 folders: not 200 new tasks a poll).
        waiters: dict[FolderIntake, asyncio.Future[None]] = {}
        try:
            while True:
                waiting = [
                    i
                    for i in self._intakes.values()
                    if not i.health.first_scan_done and i.health.mode != "down"
                ]
                if not waiting:
                    return
                for intake in waiting:
                    if intake not in waiters:
                        waiters[intake] = asyncio.ensure_future(intake.wait_first_scan())
                # "Down" has no event of its own: look again after a short while.
                await asyncio.wait([waiters[i] for i in waiting], timeout=READY_POLL_S)
        finally:
            for waiter in waiters.values():
                waiter.cancel()
