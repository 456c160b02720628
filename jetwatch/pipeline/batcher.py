"""Batch loop: STABLE files → OPEN batches, by count, bytes, linger and age (``plan_batches``).

A round reads each folder's queue in windows of ``ROUND_BATCHES`` full batches (the slim
``stable_queue``: id, size, stable_at), so a burst of 100,000 waiting files costs one small
query per window instead of a full row per file. The last, partial batch of a window that
is not the end of the queue stays open: the next window continues it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import structlog

from jetwatch.config.settings import FolderSettings
from jetwatch.domain.batching import BatchLimits, Queued, plan_batches
from jetwatch.domain.clock import SYSTEM_CLOCK, Clock
from jetwatch.domain.states import InvalidTransitionError
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.wake import Stage, Wakeups, run_stage

log = structlog.get_logger(__name__)

ROUND_BATCHES = 8  # full batches one window of the queue holds
IDLE_S = 60.0  # at least this often: intake, actions, ops and reloads ring BATCH


def limits_of(folder: FolderSettings) -> BatchLimits:
    return BatchLimits(
        max_files=folder.max_files,
        max_bytes=folder.max_bytes,
        linger_s=folder.batch_linger_seconds,
        max_wait_s=folder.max_wait_seconds,
    )


class Batcher:
    """Forms batches for every folder; wakes the deliverer when it made some."""

    def __init__(
        self,
        ledger: LedgerStore,
        folders: Callable[[], Mapping[str, FolderSettings]],
        *,
        wakeups: Wakeups,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._ledger = ledger
        self._folders = folders
        self._wakeups = wakeups
        self._clock = clock
        # folder → file id → monotonic time it became ready: linger and max_wait survive
        # clock steps.
        self._ready_at: dict[str, dict[int, float]] = {}

    async def run(self) -> None:
        await run_stage(self._wakeups, Stage.BATCH, self.run_once, clock=self._clock, idle_s=IDLE_S)

    async def run_once(self) -> float | None:
        """Form every batch that is due; when the next one will be (None: nothing waits)."""
        due: list[float] = []
        for label, folder in self._folders().items():
            close_at = await self.form(label, folder)
            if close_at is not None:
                due.append(close_at)
        return min(due, default=None)

    async def form(self, label: str, folder: FolderSettings) -> float | None:
        """Form the folder's due batches, window by window; when its open batch closes."""
        limits = limits_of(folder)
        window = limits.max_files * ROUND_BATCHES
        while True:
            queued = await self._ledger.stable_queue(label, window + 1)
            more = len(queued) > window
            now = self._clock.monotonic()
            ready_at = self._ready_at.setdefault(label, {})
            window_queue = self._on_monotonic(queued[:window], ready_at, limits, now)
            # A window's tail is followed by more files: it is not due yet, it is not full yet.
            batches, close_at = plan_batches(window_queue, limits, -math.inf if more else now)
            formed, raced = await self._create(label, batches, ready_at)
            if formed:
                self._wakeups.wake(Stage.DELIVER)
            if raced:
                continue  # the queue changed under this window: read it again
            if not more:
                # The whole queue was seen: forget files that left it otherwise (GONE).
                waiting = {q.file_id for q in window_queue}
                self._ready_at[label] = {i: t for i, t in ready_at.items() if i in waiting}
            if not more or not batches:
                return close_at

    async def _create(
        self, label: str, batches: list[list[int]], ready_at: dict[int, float]
    ) -> tuple[int, bool]:
        """Create the planned batches; (how many, whether the queue changed meanwhile)."""
        for formed, file_ids in enumerate(batches):
            try:
                batch_id = await self._ledger.create_batch(label, file_ids, self._clock.wall())
            except InvalidTransitionError as exc:
                # Intake recorded a newer version of one of these files since the queue was
                # read: the older one is GONE now and cannot be batched.
                log.info("batch_raced", folder=label, files=len(file_ids), error=str(exc))
                return formed, True
            log.info("batch_formed", folder=label, batch_id=batch_id, files=len(file_ids))
            for file_id in file_ids:
                ready_at.pop(file_id, None)
        return len(batches), False

    def _on_monotonic(
        self, queued: list[Queued], ready_at: dict[int, float], limits: BatchLimits, now: float
    ) -> list[Queued]:
        """The queue with ready times on the monotonic clock, taken when first seen.

        The ledger's stable_at is a wall time: a file's age when first seen is wall now −
        stable_at, kept between 0 and max_wait so a clock step either way cannot stall it.
        """
        wall = self._clock.wall()
        for q in queued:
            if q.file_id not in ready_at:
                age_s = min(max(0.0, wall - q.ready_at), limits.max_wait_s)
                ready_at[q.file_id] = now - age_s
        return [Queued(q.file_id, q.size, ready_at[q.file_id]) for q in queued]
