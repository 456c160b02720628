"""SCAN mode's passes: a full walk when due or required, else only the changed directories."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from jetwatch.intake.dirindex import DirIndex
from jetwatch.intake.scan import ScanReport

log = structlog.get_logger(__name__)

Scan = Callable[..., Awaitable[ScanReport | None]]  # scan(record=..., changed=...)


class ScanPasses:
    """The directories of the last walk with their times, and why every pass must be a
    full walk (``off``) when the index cannot be trusted or kept."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.index: DirIndex | None = None
        self.off: str | None = None

    async def run(self, scan: Scan, *, full_due: bool) -> bool:
        """One pass; True when a full walk completed that restarts the reconcile timer."""
        index = self.index
        if not (index is None or self.off is not None or full_due):
            await scan(changed=index)
            if index.overflow:
                self._incremental_off(f"more than {index.max_dirs} directories to keep track of")
            return False
        if index is not None:
            # A walk lists each directory once, the last maybe seconds from now: what
            # changed since the last pass is looked at first, as any pass would.
            await scan(changed=index)
        walked = DirIndex() if self.off is None else None
        if await scan(record=walked) is None or walked is None:
            return False
        moved = None if index is None else index.audit(walked)
        if moved is not None:
            self._incremental_off(f"directory {moved!r} changed without changing its times")
        elif walked.overflow:
            self._incremental_off(f"more than {walked.max_dirs} directories to keep track of")
        else:
            self.index = walked
        return True

    def _incremental_off(self, reason: str) -> None:
        self.index, self.off = None, reason
        log.warning("scan_every_directory", folder=self.name, reason=reason)


async def with_beside(
    main: Awaitable[None], wake: asyncio.Event, side: Callable[[], Awaitable[None]]
) -> None:
    """Await ``main`` while running ``side()`` at each ``wake`` (cleared here) meanwhile.

    The first full scan takes seconds at a million files: new directories are scanned
    beside it, not after it. Wake-ups cleared here are not lost: the events loop looks at
    everything once the scan ends. An error of ``side`` is raised after ``main``.
    """

    async def loop() -> None:
        while True:
            await wake.wait()
            wake.clear()
            await side()

    beside = asyncio.create_task(loop())
    try:
        await main
    finally:
        beside.cancel()
        await asyncio.wait({beside})
    if (exc := None if beside.cancelled() else beside.exception()) is not None:
        raise exc
