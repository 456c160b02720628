"""Releasing HELD batches once what held them is gone: the one place every kind of hold ends.

The :class:`~jetwatch.domain.states.HoldReason` decides: a target hold (paused, unusable,
404, 403) ends when the folder's target is usable again, a folder hold when the watched
folder can be read again (one stat per folder, at most every ``FOLDER_RECHECK_S``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import structlog

from jetwatch.config.settings import FolderSettings
from jetwatch.domain.clock import Clock
from jetwatch.domain.states import BatchRow
from jetwatch.domain.store import LedgerStore
from jetwatch.pipeline.presence import folder_problem
from jetwatch.targets.registry import TargetRegistry

log = structlog.get_logger(__name__)

FOLDER_RECHECK_S = 1.0  # how often a held folder's root is looked at again (one stat)


class HoldKeeper:
    """Finds the HELD batches that may go again and sets them OPEN."""

    def __init__(
        self,
        ledger: LedgerStore,
        targets: TargetRegistry,
        folders: Callable[[], Mapping[str, FolderSettings]],
        *,
        clock: Clock,
    ) -> None:
        self._ledger = ledger
        self._targets = targets
        self._folders = folders
        self._clock = clock
        self._folders_at = 0.0  # when folder holds are looked at again (monotonic)

    @property
    def recheck_at(self) -> float:
        """When folder holds are looked at again (monotonic)."""
        return self._folders_at

    def recheck_folders_soon(self) -> float:
        """A batch was just held for its folder: look at it again in FOLDER_RECHECK_S."""
        self._folders_at = max(self._folders_at, self._clock.monotonic() + FOLDER_RECHECK_S)
        return self._folders_at

    async def release_due(self) -> float | None:
        """Release what may go; when folder holds are to be looked at again (None: none left)."""
        folders = self._folders()
        held = [b for b in await self._ledger.held_batches() if b.folder in folders]
        if not held:
            return None
        now = self._clock.monotonic()
        back = [b for b in held if b.held_reason is None or b.held_reason.is_target]
        back = [b for b in back if self._targets.status(b.folder).usable]
        waiting = [b for b in held if b.held_reason is not None and not b.held_reason.is_target]
        if waiting and now >= self._folders_at:
            looked_at = {b.folder: folders[b.folder] for b in waiting}
            readable = await asyncio.to_thread(_readable, looked_at)
            back += [b for b in waiting if b.folder in readable]
            waiting = [b for b in waiting if b.folder not in readable]
            self._folders_at = now + FOLDER_RECHECK_S
        by_folder: dict[str, list[BatchRow]] = {}
        for batch in back:
            by_folder.setdefault(batch.folder, []).append(batch)
        for folder, batches in by_folder.items():
            released = await self._ledger.release_held([b.id for b in batches], self._clock.wall())
            log.info("batches_released", folder=folder, batches=released, reason=_why(batches))
        return self._folders_at if waiting else None


def _readable(folders: Mapping[str, FolderSettings]) -> set[str]:
    """The folders whose root can be looked into again (blocking: one stat each)."""
    return {label for label, folder in folders.items() if folder_problem(folder.path) is None}


def _why(batches: list[BatchRow]) -> str:
    target = any(b.held_reason is None or b.held_reason.is_target for b in batches)
    return "target usable again" if target else "folder available again"
