"""Track loop: one poller follows every in-flight submission until it ends, then records it.

Each submission is polled through its folder's target on its own adaptive interval
(``poll_min`` after a change, growing 1.5x to ``poll_max`` while nothing moves; bounds per
target kind), with a bound on concurrent requests. The verdict is the target's
:class:`~jetwatch.domain.target.Progress` (for Jet: the delivery's, never one transfer's).
A batch of a folder a reload removed is followed through the target the folder had; after
a restart without that folder, it waits in the ledger until the folder is configured again.

Two endings are not the files' fault and are delivered again without counting an attempt
(Jet skips what arrived): a delivery that failed while its job is paused (a job with
``clearBacklogOnPause`` drops its work), and a stalled one — no change for ``stall_s``
(a kind's ``stall_seconds``; the clock stands still while the job is paused) and no
transfer of it in progress. A growing folder's delivery that moved exactly the bytes on
disk now carried each file as it is now (Jet followed it until idle): the ledger row takes
that version, so it is not delivered a second time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from jetwatch import metrics
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.clock import SYSTEM_CLOCK, Clock
from jetwatch.domain.fleet import Acting, OwnsEverything
from jetwatch.domain.progress import ProgressBoard
from jetwatch.domain.retry import plan_retry
from jetwatch.domain.states import BatchRow, FileKey, FileRow, RetryPlan
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.target import Progress
from jetwatch.domain.wake import Stage, Wakeups, run_stage
from jetwatch.errors import ApiError, NotFoundError
from jetwatch.pipeline.filelog import FileLines
from jetwatch.pipeline.presence import live_files
from jetwatch.targets.registry import TargetRegistry

log = structlog.get_logger(__name__)

UNCONFIGURED_RECHECK_S = 30.0  # a batch of a folder removed from the config


@dataclass(slots=True)
class _Schedule:
    """When a submission is polled next and since when it runs, on the monotonic clock."""

    next_at: float
    interval_s: float
    started: float  # a submission from before a restart counts its age from its wall time
    fingerprint: tuple[object, ...] = ()
    changed_at: float = 0.0  # when it last showed a change (or its job was paused)


class Tracker:
    """Polls SUBMITTED batches' submissions; writes COMPLETED or FAILED (+ retry plan).

    ``poll_bounds`` maps a target kind to its (poll_min_s, poll_max_s); other kinds use
    ``poll_min_s`` and ``poll_max_s``. Each poll's progress goes on ``board`` (what status
    and the console show); ``file_lines`` writes the per-file log lines of finished batches.
    Only batches of folders ``ownership`` lets this daemon act on are followed: the next
    owner of a folder follows its batches in flight.
    """

    def __init__(
        self,
        ledger: LedgerStore,
        targets: TargetRegistry,
        folders: Callable[[], Mapping[str, FolderSettings]],
        *,
        poll_min_s: float = 1.0,
        poll_max_s: float = 30.0,
        poll_bounds: Mapping[str, tuple[float, float]] | None = None,
        stall_bounds: Mapping[str, float] | None = None,
        max_concurrent: int = 8,
        wakeups: Wakeups,
        clock: Clock = SYSTEM_CLOCK,
        board: ProgressBoard | None = None,
        file_lines: FileLines | None = None,
        ownership: Acting | None = None,
    ) -> None:
        self._ownership = ownership or OwnsEverything()
        self._ledger = ledger
        self.board = board or ProgressBoard()
        self._file_lines = file_lines or FileLines(ledger)
        self._targets = targets
        self._folders = folders
        self._poll_min_s = poll_min_s
        self._poll_max_s = poll_max_s
        self._bounds = dict(poll_bounds or {})
        self._stalls = dict(stall_bounds or {})
        self._limit = asyncio.Semaphore(max_concurrent)
        self._wakeups = wakeups
        self._clock = clock
        self._schedule: dict[int, _Schedule] = {}

    async def run(self) -> None:
        await run_stage(
            self._wakeups, Stage.TRACK, self.run_once, clock=self._clock,
            idle_s=self._poll_max_s, min_s=0.05, cap=False,
        )  # fmt: skip

    async def run_once(self) -> float | None:
        """Poll every submission that is due; return when the next one is due."""
        batches = [
            b for b in await self._ledger.submitted_batches() if self._ownership.may_act(b.folder)
        ]
        now, wall = self._clock.monotonic(), self._clock.wall()
        live = {b.id for b in batches}
        for gone in set(self._schedule) - live:
            del self._schedule[gone]
        self.board.retain(live)
        due = []
        for batch in batches:
            sched = self._schedule.get(batch.id)
            if sched is None:
                poll_min_s = self._bounds_of(batch)[0]
                ran_s = max(0.0, wall - (batch.submitted_at or batch.created_at))
                sched = self._schedule[batch.id] = _Schedule(
                    now + poll_min_s, poll_min_s, started=now - ran_s, changed_at=now
                )
            if sched.next_at <= now:
                due.append(batch)
        self._update_gauges(batches)
        if due:
            # Wait for every poll before raising: one left running could record its batch
            # while the next round polls it again.
            results = await asyncio.gather(
                *(self._poll_guarded(b) for b in due), return_exceptions=True
            )
            # What just finished is no longer in flight: the stage may now idle for a while.
            self._update_gauges([b for b in batches if b.id in self._schedule])
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        pending = [s.next_at for s in self._schedule.values()]
        return min(pending) if pending else None

    async def _poll_guarded(self, batch: BatchRow) -> None:
        async with self._limit:
            with structlog.contextvars.bound_contextvars(
                batch_id=batch.id, delivery_id=batch.delivery_id, folder=batch.folder
            ):
                await self.poll(batch)

    async def poll(self, batch: BatchRow) -> None:
        """One look at the batch's submission through its target, and whatever it decides."""
        assert batch.delivery_id is not None
        sched = self._schedule[batch.id]
        poll_min_s, poll_max_s = self._bounds_of(batch)
        target = self._targets.target(batch.folder)
        now = self._clock.monotonic()
        if target is None:
            sched.next_at = now + UNCONFIGURED_RECHECK_S
            return
        age_s = now - sched.started
        try:
            progress = await target.poll(
                batch.delivery_id, batch.file_count, age_s, ident=batch.job_id
            )
        except NotFoundError:
            await self._finish_failed(batch, f"{target.kind} submission not found (404)")
            return
        except ApiError as exc:
            log.warning("delivery_poll_failed", error=str(exc))
            sched.interval_s = min(poll_max_s, sched.interval_s * 2)
            sched.next_at = self._clock.monotonic() + sched.interval_s
            return
        now = self._clock.monotonic()
        self.board.observe(
            batch.id, folder=batch.folder, handle=batch.delivery_id, files=batch.file_count,
            bytes_total=batch.total_bytes, progress=progress, now=now, wall=self._clock.wall(),
        )  # fmt: skip
        paused = self._targets.status(batch.folder).paused
        if not progress.done:
            self._reschedule(sched, progress, now, poll_min_s, poll_max_s)
            if paused:
                sched.changed_at = now  # it cannot move while its job is paused
            await self._check_stall(batch, sched, now)
        elif progress.failed and (progress.job_paused or paused):
            why = f"failed while its job was paused: {progress.detail or 'failed'}"
            await self._redeliver(batch, "job_paused", why)
        elif progress.failed:
            await self._finish_failed(batch, progress.detail or "failed")
        else:
            await self._finish_ok(batch, progress, now - sched.started)

    async def _check_stall(self, batch: BatchRow, sched: _Schedule, now: float) -> None:
        folder = self._folders().get(batch.folder)
        stall_s = None if folder is None else self._stalls.get(folder.target)
        target = self._targets.target(batch.folder)
        if stall_s is None or target is None or now - sched.changed_at < stall_s:
            return
        assert batch.delivery_id is not None
        try:
            moving = await target.is_moving(batch.delivery_id, ident=batch.job_id)
        except ApiError as exc:
            log.warning("delivery_stall_check_failed", error=str(exc))
            return
        if moving:
            sched.changed_at = now  # copying one big file shows no count change for long
            return
        why = f"stalled: no change for {stall_s:.0f} s and no transfer of it in progress"
        await self._redeliver(batch, "stalled", why)

    async def _redeliver(self, batch: BatchRow, reason: str, why: str) -> None:
        """Send the batch's files again as the same attempt (not the files' fault)."""
        now = self._clock.wall()
        ids = tuple(f.id for f in live_files(await self._ledger.batch_files(batch.id)))
        plans = [RetryPlan(ids, batch.attempt, now)] if ids else []
        await self._ledger.fail_batch(batch.id, why, now, plans, [])
        self._schedule.pop(batch.id, None)
        metrics.DELIVERIES_REDELIVERED.labels(batch.folder, reason).inc()
        log.warning("delivery_redelivered", reason=why, files=len(ids))
        self._wakeups.wake(Stage.DELIVER)

    def _bounds_of(self, batch: BatchRow) -> tuple[float, float]:
        folder = self._folders().get(batch.folder)
        default = (self._poll_min_s, self._poll_max_s)
        return default if folder is None else self._bounds.get(folder.target, default)

    def _reschedule(
        self, sched: _Schedule, progress: Progress, now: float, poll_min_s: float, poll_max_s: float
    ) -> None:
        p = progress
        fingerprint = (p.state, p.transferred, p.skipped, p.bytes_done, p.failed_count, p.marks)
        if fingerprint != sched.fingerprint:
            sched.interval_s = poll_min_s
            sched.fingerprint = fingerprint
            sched.changed_at = now
        else:
            sched.interval_s = min(poll_max_s, sched.interval_s * 1.5)
        sched.next_at = now + sched.interval_s

    async def _finish_ok(self, batch: BatchRow, progress: Progress, took_s: float) -> None:
        folder = self._folders().get(batch.folder)
        if folder is not None and folder.growing:
            await self._follow_growth(batch, folder.path, progress)
        await self._ledger.complete_batch(batch.id, self._clock.wall())
        self._schedule.pop(batch.id, None)
        label = batch.folder
        # A target that reports no bytes (an IM run) moved the whole batch when it moved all.
        sent_all = progress.transferred >= batch.file_count
        size = progress.bytes_done or (batch.total_bytes if sent_all else 0)
        metrics.FILES_TRANSFERRED.labels(label).inc(progress.transferred)
        metrics.FILES_SKIPPED.labels(label).inc(progress.skipped)
        metrics.BYTES_TRANSFERRED.labels(label).inc(size)
        files_done = progress.transferred + progress.skipped
        self.board.finish(
            batch.id, folder=label, files=files_done, size=size, wall=self._clock.wall()
        )
        log.info(
            "delivery_completed",
            transferred=progress.transferred,
            skipped=progress.skipped,
            bytes=size,
            seconds=round(took_s, 2),
        )
        await self._file_lines.delivered(batch, size=size, now=self._clock.monotonic())
        self._wakeups.wake(Stage.ACTIONS)

    async def _finish_failed(self, batch: BatchRow, reason: str) -> None:
        now = self._clock.wall()  # the retries' not_before is a ledger time
        folder = self._folders().get(batch.folder)
        max_attempts = folder.max_attempts if folder else 5
        backoff = folder.retry_backoff_seconds if folder else 5.0
        # Files that vanished before the POST were never part of this attempt.
        files = live_files(await self._ledger.batch_files(batch.id))
        plan = plan_retry(batch, files, max_attempts, backoff, now)
        await self._ledger.fail_batch(batch.id, reason, now, plan.retries, plan.give_up)
        self._schedule.pop(batch.id, None)
        self.board.forget(batch.id)
        if plan.give_up:
            metrics.FILES_FAILED.labels(batch.folder).inc(len(plan.give_up))
            given_up = [f for f in files if f.id in set(plan.give_up)]
            paths = [f.relpath for f in given_up]
            log.error("files_failed", reason=reason, paths=paths[:20], count=len(paths))
            self._file_lines.failed(batch, given_up, reason, self._clock.monotonic())
        log.warning(
            "delivery_failed",
            reason=reason,
            retry_batches=len(plan.retries),
            given_up=len(plan.give_up),
        )
        self._wakeups.wake(Stage.DELIVER, Stage.ACTIONS)

    async def _follow_growth(self, batch: BatchRow, root: Path, progress: Progress) -> None:
        """Growing files: when the delivery moved exactly the bytes on disk now, it carried
        each file as it is now (before complete_batch, so the post-action sees that)."""
        rows = live_files(await self._ledger.batch_files(batch.id))
        now_keys = await asyncio.to_thread(_current_keys, root, rows)
        moved_bytes = progress.bytes_done + progress.bytes_skipped
        if None in now_keys or sum(k.size for k in now_keys if k) != moved_bytes:
            return  # changed since, or gone: its new version goes out on its own
        for row, key in zip(rows, now_keys, strict=True):
            if key is not None and key != row.key:
                await self._ledger.follow_version(row.id, key, self._clock.wall())
                log.info("growing_file_followed", path=row.relpath, size=key.size)

    def _update_gauges(self, batches: list[BatchRow]) -> None:
        counts: dict[str, int] = dict.fromkeys(self._folders(), 0)
        for b in batches:
            counts[b.folder] = counts.get(b.folder, 0) + 1
        for label, n in counts.items():
            metrics.BATCHES_IN_FLIGHT.labels(label).set(n)


def _current_keys(root: Path, rows: list[FileRow]) -> list[FileKey | None]:
    """Each row's file as it is on disk now (blocking: a stat each), None when gone."""
    keys: list[FileKey | None] = []
    for row in rows:
        try:
            st = os.stat(root / row.relpath, follow_symlinks=False)
        except OSError:
            keys.append(None)
            continue
        keys.append(FileKey(row.relpath, st.st_size, st.st_mtime_ns, st.st_ino))
    return keys
