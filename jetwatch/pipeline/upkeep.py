"""Ledger upkeep: prune finished rows of files gone from disk after ``retention_days``.

Runs (its file stats off the event loop) once shortly after start and then every
``interval_s`` (jittered). A row is only pruned when its file is provably gone: while a
folder's root is missing (share unmounted) nothing of that folder is pruned, otherwise its
files would look new when the share returns and be sent again.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from jetwatch.config.settings import FolderSettings
from jetwatch.domain.clock import SYSTEM_CLOCK, Clock
from jetwatch.domain.store import LedgerStore
from jetwatch.errors import LedgerError

log = structlog.get_logger(__name__)

# The first prune waits for the start-up scan and the catch-up after it (a pass over a
# million rows is a third of a second of the ledger's time; hourly after that).
FIRST_RUN_S = 600.0


def file_exists_checker(folders: Mapping[str, FolderSettings]) -> Callable[[str, str], bool]:
    """``exists(folder, relpath)`` that answers True whenever it cannot be sure."""
    roots = {label: f.path for label, f in folders.items()}

    def exists(folder: str, relpath: str) -> bool:
        root = roots.get(folder)
        if root is None or not root.is_dir():
            return True  # unknown folder (removed from config) or share down: keep
        try:
            os.stat(Path(root, relpath), follow_symlinks=False)
        except FileNotFoundError:
            return False
        except OSError:
            return True
        return True

    return exists


class LedgerMaintenance:
    """Long-lived component: periodic ``ledger.prune``."""

    def __init__(
        self,
        ledger: LedgerStore,
        folders: Callable[[], Mapping[str, FolderSettings]],
        *,
        retention_s: float,
        interval_s: float = 3600.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._folders = folders
        self._retention_s = retention_s
        self._interval_s = interval_s

    async def run(self) -> None:
        await asyncio.sleep(min(FIRST_RUN_S, self._interval_s))
        while True:
            await self.run_once()
            await asyncio.sleep(self._interval_s * random.uniform(0.75, 1.25))

    async def run_once(self) -> int:
        """Prune once; errors are logged and retried at the next interval."""
        exists = file_exists_checker(dict(self._folders()))
        try:
            # ``exists`` stats files: the ledger calls it off the event loop.
            return await self._ledger.prune(self._clock.wall(), self._retention_s, exists)
        except LedgerError as exc:
            log.warning("ledger_prune_failed", error=str(exc))
            return 0
