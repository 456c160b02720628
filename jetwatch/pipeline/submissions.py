"""What a submission's outcome writes: accepted, in the open again, failed (bisect), held.

Shared by the deliverer and the in-doubt resolver, so an adopted submission and a fresh one
are recorded the same way. Every write comes before what it allows next.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from jetwatch import metrics
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.clock import Clock
from jetwatch.domain.retry import plan_retry
from jetwatch.domain.states import BatchRow, FileRow, HoldReason
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.wake import Stage, Wakeups
from jetwatch.targets.registry import TargetRegistry

log = structlog.get_logger(__name__)


def hold_text(reason: HoldReason, detail: str | None) -> str:
    """A hold as people read it: the reason, and its detail when there is one."""
    return f"{reason.value}: {detail}" if detail else reason.value


class Submissions:
    """Records what became of one batch's submission."""

    def __init__(
        self, ledger: LedgerStore, targets: TargetRegistry, *, wakeups: Wakeups, clock: Clock
    ) -> None:
        self._ledger = ledger
        self._targets = targets
        self._wakeups = wakeups
        self._clock = clock

    async def accepted(
        self, batch: BatchRow, folder: FolderSettings, files: Sequence[FileRow], handle: str
    ) -> None:
        await self._ledger.mark_submitted(batch.id, handle, self._clock.wall())
        metrics.FILES_SUBMITTED.labels(folder.label).inc(len(files))
        size = sum(f.size for f in files)
        log.info("delivery_submitted", delivery_id=handle, files=len(files), bytes=size)
        self._wakeups.wake(Stage.TRACK)

    async def reopen(self, batch: BatchRow, not_before: float, error: str) -> None:
        now = self._clock.wall()
        await self._ledger.reopen(batch.id, now, not_before, error)
        log.warning("delivery_post_failed", error=error, retry_in_s=round(not_before - now, 1))

    async def fail(
        self, batch: BatchRow, folder: FolderSettings, files: Sequence[FileRow], reason: str
    ) -> None:
        """The target refused these objects: retry whole, then bisect (``plan_retry``)."""
        now = self._clock.wall()
        plan = plan_retry(batch, files, folder.max_attempts, folder.retry_backoff_seconds, now)
        await self._ledger.fail_batch(batch.id, reason, now, plan.retries, plan.give_up)
        if plan.give_up:
            metrics.FILES_FAILED.labels(folder.label).inc(len(plan.give_up))
        log.warning(
            "batch_failed", reason=reason, retries=len(plan.retries), given_up=len(plan.give_up)
        )
        self._wakeups.wake(Stage.DELIVER, Stage.ACTIONS)

    async def hold(
        self,
        batch: BatchRow,
        folder: FolderSettings,
        reason: HoldReason,
        detail: str | None = None,
        *,
        refused: bool = False,
    ) -> None:
        """HELD for ``reason``; ``refused``: the target said so, the registry checks again."""
        await self._ledger.mark_held(batch.id, reason, self._clock.wall(), detail)
        if refused:
            self._targets.note_refused(folder.label, reason, detail or "")
        log.warning(
            "batch_held", batch_id=batch.id, folder=folder.label, reason=hold_text(reason, detail)
        )
