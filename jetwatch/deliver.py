"""Deliver loop: settled files → batches → ``POST /deliveries`` → ledger, exactly once.

Every step is written to the ledger before the action it allows: a batch is SUBMITTING
before its POST. A POST whose outcome is unknown (or a crash mid-POST) leaves the batch
SUBMITTING, "in doubt"; it is resolved by looking for a delivery with the same objects on
the job before anything is posted again.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

import structlog

from jetwatch import metrics
from jetwatch.batch import BatchLimits, Queued, plan_batches
from jetwatch.config import FolderSettings
from jetwatch.errors import (
    JetAuthError,
    JetError,
    JetForbiddenError,
    JetJobPausedError,
    JetNotFoundError,
    JetOutcomeUnknownError,
    JetRejectedError,
    LedgerUnavailableError,
)
from jetwatch.jet.client import JetClient
from jetwatch.jet.models import Delivery, DeliveryObject
from jetwatch.jobs import JobRegistry
from jetwatch.ledger import BatchRow, FileRow, LedgerStore
from jetwatch.retry import backoff_s, plan_retry
from jetwatch.wakeup import sleep_or_wake

log = structlog.get_logger(__name__)

IN_DOUBT_LOOKBACK = 50  # newest unknown deliveries of a job examined to resolve a batch


def object_path(folder: FolderSettings, relpath: str) -> str:
    """``relativePath`` for Jet: relative to the job's source profile root, leading '/'."""
    prefix = PurePosixPath(
        Path(os.path.normpath(folder.path)).relative_to(os.path.normpath(folder.root)).as_posix()
    )
    joined = (prefix / relpath).as_posix()
    return "/" + joined.removeprefix("./")


def batch_objects(folder: FolderSettings, files: Sequence[FileRow]) -> list[DeliveryObject]:
    return [
        DeliveryObject(relative_path=object_path(folder, f.relpath), size_in_bytes=f.size)
        for f in files
    ]


def limits_of(folder: FolderSettings) -> BatchLimits:
    return BatchLimits(
        max_files=folder.max_files,
        max_bytes=folder.max_bytes,
        linger_s=folder.batch_linger_seconds,
        max_wait_s=folder.max_wait_seconds,
    )


class Deliverer:
    """Forms batches and submits them; one instance for all folders."""

    def __init__(
        self,
        ledger: LedgerStore,
        client: JetClient,
        jobs: JobRegistry,
        folders: Callable[[], Mapping[str, FolderSettings]],
        *,
        on_submitted: Callable[[], None] = lambda: None,
        max_concurrent_posts: int = 4,
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._jobs = jobs
        self._folders = folders
        self._on_submitted = on_submitted
        self._posts = asyncio.Semaphore(max_concurrent_posts)
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_doubt_checked = False

    def wake(self) -> None:
        """New stable files, a released hold or a config reload: look again now."""
        self._wake.set()

    def stop_intake(self) -> None:
        """Finish the current round, then stop taking new batches (graceful shutdown)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                next_at = await self.run_once(time.time())
            except LedgerUnavailableError as exc:
                log.error("ledger_unavailable", error=str(exc))
                metrics.LEDGER_ERRORS.inc()
                next_at = time.time() + 2.0
            delay = 5.0 if next_at is None else max(0.0, next_at - time.time())
            if self._stopping:
                return
            await sleep_or_wake(self._wake, min(delay, 5.0))

    async def run_once(self, now: float) -> float | None:
        """Form due batches, resolve in-doubt ones, submit open ones; next wake-up time."""
        next_at = self.form_batches(now)
        if self._jobs.api_ok and not self._in_doubt_checked:
            await self.resolve_in_doubt()
            self._in_doubt_checked = True
        await self.submit_open(now)
        ledger_next = self._ledger.next_open_at()
        candidates = [t for t in (next_at, ledger_next) if t is not None]
        return min(candidates) if candidates else None

    def form_batches(self, now: float) -> float | None:
        next_at: float | None = None
        for label, folder in self._folders().items():
            pending = self._ledger.pending_stable(label)
            queued = [Queued(f.id, f.size, f.stable_at) for f in pending]
            batches, close_at = plan_batches(queued, limits_of(folder), now)
            for file_ids in batches:
                batch_id = self._ledger.create_batch(label, file_ids, now)
                log.info("batch_formed", folder=label, batch_id=batch_id, files=len(file_ids))
            if close_at is not None:
                next_at = close_at if next_at is None else min(next_at, close_at)
        return next_at

    async def submit_open(self, now: float) -> None:
        folders = self._folders()
        batches = [b for b in self._ledger.open_batches(now) if b.folder in folders]
        if batches:
            await asyncio.gather(*(self._submit_guarded(b, folders[b.folder]) for b in batches))

    async def _submit_guarded(self, batch: BatchRow, folder: FolderSettings) -> None:
        async with self._posts:
            if not self._stopping:  # shutting down: no new POSTs, the batch stays OPEN
                await self.submit(batch, folder)

    async def submit(self, batch: BatchRow, folder: FolderSettings) -> None:
        """Post one OPEN batch; every outcome is written to the ledger."""
        job = self._jobs.status(folder.job)
        if job.job_id is None:
            return  # not resolved yet (API down): stays OPEN, retried when it resolves
        if job.paused or job.problem:
            self._ledger.mark_held(batch.id, job.problem or "job paused", time.time())
            log.warning(
                "batch_held",
                batch_id=batch.id,
                folder=folder.label,
                reason=job.problem or "job paused",
            )
            return
        files = self._present_files(batch, folder)
        if not files:
            return
        self._ledger.mark_submitting(batch.id, job.job_id, time.time())
        with structlog.contextvars.bound_contextvars(batch_id=batch.id, folder=folder.label):
            await self._post(batch, folder, job.job_id, files)

    async def _post(
        self, batch: BatchRow, folder: FolderSettings, job_id: str, files: list[FileRow]
    ) -> None:
        now = time.time()
        try:
            delivery = await self._client.create_delivery(job_id, batch_objects(folder, files))
        except JetOutcomeUnknownError as exc:
            log.warning("delivery_outcome_unknown", error=str(exc))
            await self._resolve_one(self._ledger.batch(batch.id), folder)
        except JetJobPausedError:
            self._hold(batch, folder, "job paused", paused=True)
        except JetNotFoundError:
            self._hold(batch, folder, "job not found (404)")
        except JetForbiddenError:
            self._hold(batch, folder, "forbidden (403): the client's role may not deliver")
        except JetAuthError as exc:
            self._reopen(batch, now + 30.0, f"credentials refused: {exc}")
        except JetRejectedError as exc:
            # A 400 that is not a pause: some object is unacceptable. Bisect to find it.
            self._fail(batch, folder, files, f"delivery refused ({exc.status}): {exc.body}", now)
        except JetError as exc:
            self._reopen(batch, now + backoff_s(batch.attempt, 2.0, 60.0), str(exc))
        else:
            self._accepted(batch, folder, files, delivery)

    def _accepted(
        self, batch: BatchRow, folder: FolderSettings, files: list[FileRow], delivery: Delivery
    ) -> None:
        self._ledger.mark_submitted(batch.id, delivery.delivery_id, time.time())
        metrics.FILES_SUBMITTED.labels(folder.label).inc(len(files))
        log.info(
            "delivery_submitted",
            delivery_id=delivery.delivery_id,
            files=len(files),
            bytes=sum(f.size for f in files),
        )
        self._on_submitted()

    def _present_files(self, batch: BatchRow, folder: FolderSettings) -> list[FileRow]:
        """Files of the batch still on disk as settled; the others are GONE (not sent)."""
        files = self._ledger.batch_files(batch.id)
        gone = [f for f in files if not _unchanged(folder.path, f)]
        if gone:
            self._ledger.mark_gone([f.id for f in gone], time.time())
            metrics.FILES_VANISHED.labels(folder.label).inc(len(gone))
            for f in gone:
                log.warning("file_gone_before_submit", folder=folder.label, path=f.relpath)
        return [f for f in files if f.id not in {g.id for g in gone}]

    def _hold(
        self, batch: BatchRow, folder: FolderSettings, reason: str, *, paused: bool = False
    ) -> None:
        self._ledger.mark_held(batch.id, reason, time.time())
        self._jobs.note_refused(folder.job, reason, paused=paused)
        log.warning("batch_held", reason=reason)

    def _reopen(self, batch: BatchRow, not_before: float, error: str) -> None:
        self._ledger.reopen(batch.id, time.time(), not_before, error)
        log.warning(
            "delivery_post_failed", error=error, retry_in_s=round(not_before - time.time(), 1)
        )

    def _fail(
        self, batch: BatchRow, folder: FolderSettings, files: list[FileRow], reason: str, now: float
    ) -> None:
        plan = plan_retry(batch, files, folder.max_attempts, folder.retry_backoff_seconds, now)
        self._ledger.fail_batch(batch.id, reason, now, plan.retries, plan.give_up)
        if plan.give_up:
            metrics.FILES_FAILED.labels(folder.label).inc(len(plan.give_up))
        log.warning(
            "batch_failed", reason=reason, retries=len(plan.retries), given_up=len(plan.give_up)
        )

    async def resolve_in_doubt(self) -> None:
        """After a crash: settle every SUBMITTING batch before posting anything new."""
        folders = self._folders()
        for batch in self._ledger.in_doubt_batches():
            folder = folders.get(batch.folder)
            if folder is not None:
                await self._resolve_one(batch, folder)

    async def _resolve_one(self, batch: BatchRow, folder: FolderSettings) -> None:
        """Adopt the job's delivery with exactly this batch's objects, else post again."""
        if batch.job_id is None:
            self._reopen(batch, time.time(), "in doubt without a job id")
            return
        files = self._ledger.batch_files(batch.id)
        wanted = {o.relative_path for o in batch_objects(folder, files)}
        try:
            found = await self._find_delivery(batch.job_id, wanted)
        except JetError as exc:
            log.warning("in_doubt_unresolved", batch_id=batch.id, error=str(exc))
            return  # stays SUBMITTING; retried on the next start or round
        if found is not None:
            log.info("in_doubt_adopted", batch_id=batch.id, delivery_id=found.delivery_id)
            self._accepted(batch, folder, files, found)
        else:
            log.info("in_doubt_not_found", batch_id=batch.id)
            self._reopen(batch, time.time(), "not received by Jet: posting again")

    async def _find_delivery(self, job_id: str, wanted: set[str]) -> Delivery | None:
        job = await self._client.get_job(job_id)
        known = self._ledger.known_delivery_ids()
        unknown = [d for d in job.delivery_ids if d not in known]
        # The order of a job's delivery list is not documented: look at both ends.
        edges = unknown[:IN_DOUBT_LOOKBACK] + unknown[-IN_DOUBT_LOOKBACK:]
        for delivery_id in dict.fromkeys(edges):
            delivery = await self._client.get_delivery(job_id, delivery_id)
            if (
                delivery.objects is not None
                and {o.relative_path for o in delivery.objects} == wanted
            ):
                return delivery
        return None


def _unchanged(root: Path, row: FileRow) -> bool:
    try:
        st = os.stat(root / row.relpath, follow_symlinks=False)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns, st.st_ino) == (row.size, row.mtime_ns, row.inode)
