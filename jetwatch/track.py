"""Track loop: one poller follows every in-flight delivery until it ends, then records it.

Each delivery is polled on its own adaptive interval (``poll_min`` after a change, growing
1.5x to ``poll_max`` while nothing moves), with a bound on concurrent requests. The verdict
comes from the delivery, never from one transfer (Jet retries transfers by itself).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from jetwatch import metrics
from jetwatch.config import FolderSettings
from jetwatch.errors import JetError, JetNotFoundError, LedgerUnavailableError
from jetwatch.jet.client import JetClient
from jetwatch.jet.models import Delivery, DeliveryState
from jetwatch.ledger import BatchRow, FileState, LedgerStore
from jetwatch.retry import plan_retry
from jetwatch.wakeup import sleep_or_wake

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a delivery's state means for its batch: done, failed (why) or still running."""

    done: bool
    failed: bool
    reason: str = ""


def judge(delivery: Delivery, objects: int, age_s: float, timeout_s: float) -> Verdict:
    """Pure: success only when transferred + skipped accounts for every object."""
    summary = delivery.summary
    state = delivery.state
    if state == DeliveryState.COMPLETED:
        if summary.failed.count > 0:
            return Verdict(True, True, f"{summary.failed.count} of {objects} objects failed")
        if summary.transferred.count + summary.skipped.count >= objects:
            return Verdict(True, False)
        return Verdict(True, True, "completed without accounting for every object")
    if state == DeliveryState.FAILED:
        return Verdict(True, True, f"delivery failed ({summary.failed.count} objects failed)")
    if age_s > timeout_s:
        return Verdict(True, True, f"no terminal state after {timeout_s:.0f} s (state {state})")
    return Verdict(False, False)


@dataclass(slots=True)
class _Schedule:
    next_at: float
    interval_s: float
    fingerprint: tuple[object, ...] = ()


class Tracker:
    """Polls SUBMITTED batches' deliveries; writes COMPLETED or FAILED (+ retry plan)."""

    def __init__(
        self,
        ledger: LedgerStore,
        client: JetClient,
        folders: Callable[[], Mapping[str, FolderSettings]],
        *,
        poll_min_s: float = 1.0,
        poll_max_s: float = 30.0,
        max_concurrent: int = 8,
        delivery_timeout_s: float = 86400.0,
        on_finished: Callable[[], None] = lambda: None,
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._folders = folders
        self._poll_min_s = poll_min_s
        self._poll_max_s = poll_max_s
        self._limit = asyncio.Semaphore(max_concurrent)
        self._timeout_s = delivery_timeout_s
        self._on_finished = on_finished
        self._schedule: dict[int, _Schedule] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A delivery was just submitted: poll it soon."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                next_at = await self.run_once(time.time())
            except LedgerUnavailableError as exc:
                log.error("ledger_unavailable", error=str(exc))
                next_at = time.time() + 2.0
            delay = self._poll_max_s if next_at is None else max(0.05, next_at - time.time())
            await sleep_or_wake(self._wake, delay)

    async def run_once(self, now: float) -> float | None:
        """Poll every delivery that is due; return when the next one is due."""
        batches = self._ledger.submitted_batches()
        live = {b.id for b in batches}
        for gone in set(self._schedule) - live:
            del self._schedule[gone]
        due = []
        for batch in batches:
            sched = self._schedule.setdefault(
                batch.id, _Schedule(now + self._poll_min_s, self._poll_min_s)
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
        """One GET of the batch's delivery and whatever it decides."""
        assert batch.job_id is not None
        assert batch.delivery_id is not None
        sched = self._schedule[batch.id]
        now = time.time()
        try:
            delivery = await self._client.get_delivery(batch.job_id, batch.delivery_id)
        except JetNotFoundError:
            self._finish_failed(batch, "delivery not found on the job (404)", now)
            return
        except JetError as exc:
            log.warning("delivery_poll_failed", error=str(exc))
            sched.interval_s = min(self._poll_max_s, sched.interval_s * 2)
            sched.next_at = now + sched.interval_s
            return
        age_s = now - (batch.submitted_at or batch.created_at)
        verdict = judge(delivery, batch.file_count, age_s, self._timeout_s)
        if not verdict.done:
            self._reschedule(sched, delivery, now)
        elif verdict.failed:
            reason = await self._failure_detail(batch, delivery, verdict.reason)
            self._finish_failed(batch, reason, now)
        else:
            self._finish_ok(batch, delivery, now)

    def _reschedule(self, sched: _Schedule, delivery: Delivery, now: float) -> None:
        s = delivery.summary
        fingerprint = (
            delivery.state,
            s.transferred.count,
            s.transferred.size_bytes,
            s.failed.count,
        )
        if fingerprint != sched.fingerprint:
            sched.interval_s = self._poll_min_s
            sched.fingerprint = fingerprint
            if delivery.state not in set(DeliveryState):
                log.warning("delivery_state_unknown", state=delivery.state)
        else:
            sched.interval_s = min(self._poll_max_s, sched.interval_s * 1.5)
        sched.next_at = now + sched.interval_s

    def _finish_ok(self, batch: BatchRow, delivery: Delivery, now: float) -> None:
        self._ledger.complete_batch(batch.id, now)
        self._schedule.pop(batch.id, None)
        s = delivery.summary
        label = batch.folder
        metrics.FILES_TRANSFERRED.labels(label).inc(s.transferred.count)
        metrics.FILES_SKIPPED.labels(label).inc(s.skipped.count)
        metrics.BYTES_TRANSFERRED.labels(label).inc(s.transferred.size_bytes)
        log.info(
            "delivery_completed",
            transferred=s.transferred.count,
            skipped=s.skipped.count,
            bytes=s.transferred.size_bytes,
            seconds=round(now - (batch.submitted_at or now), 2),
        )
        self._on_finished()

    def _finish_failed(self, batch: BatchRow, reason: str, now: float) -> None:
        folder = self._folders().get(batch.folder)
        max_attempts = folder.max_attempts if folder else 5
        backoff = folder.retry_backoff_seconds if folder else 5.0
        # Files that vanished before the POST were never part of this attempt.
        files = [f for f in self._ledger.batch_files(batch.id) if f.state != FileState.GONE]
        plan = plan_retry(batch, files, max_attempts, backoff, now)
        self._ledger.fail_batch(batch.id, reason, now, plan.retries, plan.give_up)
        self._schedule.pop(batch.id, None)
        if plan.give_up:
            metrics.FILES_FAILED.labels(batch.folder).inc(len(plan.give_up))
            paths = [f.relpath for f in files if f.id in set(plan.give_up)]
            log.error("files_failed", reason=reason, paths=paths[:20], count=len(paths))
        log.warning(
            "delivery_failed",
            reason=reason,
            retry_batches=len(plan.retries),
            given_up=len(plan.give_up),
        )
        self._on_finished()

    async def _failure_detail(self, batch: BatchRow, delivery: Delivery, reason: str) -> str:
        """Add the transfers' error messages (the API reports counts, not per-file errors)."""
        assert batch.job_id is not None
        messages: list[str] = []
        for ref in delivery.transfer_ids[:5]:
            try:
                transfer = await self._client.get_transfer(batch.job_id, ref)
            except JetError:
                continue
            if transfer.error is not None and transfer.error.message:
                messages.append(transfer.error.message)
        return f"{reason}: {'; '.join(messages)}" if messages else reason

    def _update_gauges(self, batches: list[BatchRow]) -> None:
        counts: dict[str, int] = dict.fromkeys(self._folders(), 0)
        for b in batches:
            counts[b.folder] = counts.get(b.folder, 0) + 1
        for label, n in counts.items():
            metrics.BATCHES_IN_FLIGHT.labels(label).set(n)
