"""The copy engine: turns a delivery into transfers and runs them on a bounded worker pool.

A job paused with ``clearBacklogOnPause`` drops the work of its deliveries in flight (the
copy under way is abandoned, its temporary file removed); what the delivery shows then is
the ``PausedBacklog`` model. A job that keeps its backlog waits between files until resumed.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from jetwatch.emulators.jet.config import PausedBacklog
from jetwatch.emulators.jet.copier import (
    CopyCancelledError,
    FileOutcome,
    OutcomeKind,
    Throttle,
    copy_file,
    list_directory,
)
from jetwatch.emulators.jet.faults import FaultInjector
from jetwatch.emulators.jet.model import (
    TERMINAL_DELIVERY_STATES,
    Delivery,
    DeliveryState,
    Job,
    JsonDict,
    ObjectOutcome,
    Progress,
    Tally,
    Transfer,
    TransferError,
    TransferState,
    iso_now,
    new_id,
)
from jetwatch.emulators.jet.state import EmulatorState

log = structlog.get_logger(__name__)

T = TypeVar("T")
_UNFINISHED = (TransferState.SCHEDULED, TransferState.IN_PROGRESS)
PAUSE_POLL_S = 0.1  # a delivery of a paused job that keeps its backlog looks again this often
PAUSED_CODE = "JOB_PAUSED"
_DIRECTORY_ERROR_CODES: dict[type[OSError], str] = {
    FileNotFoundError: "SOURCE_NOT_FOUND",
    NotADirectoryError: "SOURCE_NOT_A_DIRECTORY",
}


def _tally(progress: Progress, kind: OutcomeKind) -> Tally:
    return {
        OutcomeKind.TRANSFERRED: progress.transferred,
        OutcomeKind.SKIPPED: progress.skipped,
        OutcomeKind.FAILED: progress.failed,
    }[kind]


def _combine(outcomes: list[OutcomeKind]) -> ObjectOutcome:
    """One object's outcome from its files': failed, else transferred, else skipped."""
    if not outcomes or OutcomeKind.FAILED in outcomes:
        return ObjectOutcome.FAILED
    if OutcomeKind.TRANSFERRED in outcomes:
        return ObjectOutcome.TRANSFERRED
    return ObjectOutcome.SKIPPED


class _Dropped(Exception):
    """Internal: the delivery's job was paused and cleared its backlog."""


class TransferEngine:
    """Runs deliveries in the background: transfers one after another within a delivery,
    up to ``max_active_transfers`` transfers at once across deliveries."""

    def __init__(
        self,
        state: EmulatorState,
        faults: FaultInjector,
        *,
        bandwidth_bps: int = 0,
        max_active_transfers: int = 8,
        max_objects_per_transfer: int = 500,
        paused_backlog: PausedBacklog = PausedBacklog.FAIL,
    ) -> None:
        self._state = state
        self._faults = faults
        self._bandwidth_bps = bandwidth_bps
        self._max_objects = max(1, max_objects_per_transfer)
        self._paused_backlog = paused_backlog
        self._slots = asyncio.Semaphore(max_active_transfers)
        # One thread per active transfer: a transfer copies one file at a time.
        self._pool = ThreadPoolExecutor(max_active_transfers, thread_name_prefix="jetemu-copy")
        self._stop = threading.Event()
        self._halts: dict[str, threading.Event] = {}  # per running delivery: stop copying
        self._dropped: set[str] = set()  # deliveries whose job cleared its backlog
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, job: Job, objects: list[JsonDict]) -> Delivery:
        """Record a new delivery for ``job`` and start copying at once."""
        now = iso_now()
        delivery_id = new_id()
        transfers = [
            Transfer(
                new_id(),
                job.job_id,
                delivery_id,
                new_id(),
                new_id(),
                objects[i : i + self._max_objects],
                now,
                now,
                first_index=i,
            )
            for i in range(0, len(objects), self._max_objects)
        ]
        delivery = Delivery(
            delivery_id=delivery_id,
            job_id=job.job_id,
            action_id=job.action_id,
            source_profile_id=job.source_profile_id,
            dest_profile_id=job.dest_profile_id,
            objects=objects,
            transfer_ids=[t.transfer_id for t in transfers],
            created_on=now,
            last_modified_on=now,
            last_event_time=now,
        )
        self._state.add_delivery(delivery, transfers)
        self._start(delivery)
        return delivery

    def pause_job(self, job: Job) -> int:
        """The job was just paused: with ``clearBacklogOnPause`` its deliveries in flight
        lose their remaining work. Returns how many deliveries were dropped."""
        if not job.clears_backlog_on_pause:
            return 0
        dropped = 0
        for delivery in self._state.deliveries.values():
            if delivery.job_id != job.job_id or delivery.abandoned:
                continue
            if delivery.state in TERMINAL_DELIVERY_STATES:
                continue
            self._dropped.add(delivery.delivery_id)
            halt = self._halts.get(delivery.delivery_id)
            if halt is not None:
                halt.set()
            dropped += 1
        if dropped:
            log.info("emulator_backlog_cleared", job_id=job.job_id, deliveries=dropped)
        return dropped

    def resume_pending(self) -> int:
        """Restart deliveries a previous run left unfinished; unfinished transfers start over
        (files already copied then count as skipped). Returns how many were resumed."""
        pending = [
            d
            for d in self._state.deliveries.values()
            if d.state not in TERMINAL_DELIVERY_STATES and not d.abandoned
        ]
        for delivery in pending:
            for transfer_id in delivery.transfer_ids:
                transfer = self._state.transfers[transfer_id]
                if transfer.state in _UNFINISHED:
                    transfer.state = TransferState.SCHEDULED
                    transfer.progress = Progress()
                    end = transfer.first_index + len(transfer.objects)
                    delivery.outcomes[transfer.first_index : end] = [""] * len(transfer.objects)
            log.info("delivery_resumed", delivery_id=delivery.delivery_id)
            self._start(delivery)
        return len(pending)

    async def stop(self) -> None:
        """Abandon running copies (their temporary files are removed) and stop all tasks."""
        self._stop.set()
        for halt in self._halts.values():
            halt.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        if tasks:
            log.info("emulator_transfers_interrupted", deliveries=len(tasks))

    def _start(self, delivery: Delivery) -> None:
        self._halts[delivery.delivery_id] = threading.Event()
        task = asyncio.create_task(self._run_delivery(delivery), name=delivery.delivery_id)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_delivery(self, delivery: Delivery) -> None:
        try:
            for transfer_id in delivery.transfer_ids:
                transfer = self._state.transfers[transfer_id]
                if transfer.state in _UNFINISHED:
                    await self._run_transfer(delivery, transfer)
        except _Dropped:
            if self._drop(delivery):
                return  # abandoned: it never moves again
        except Exception:
            # A bug here must not leave the delivery IN_PROGRESS for ever: fail it loudly.
            log.exception("delivery_crashed", delivery_id=delivery.delivery_id)
            for transfer_id in delivery.transfer_ids:
                transfer = self._state.transfers[transfer_id]
                if transfer.state in _UNFINISHED:
                    transfer.state = TransferState.FAILED
                    transfer.error = TransferError("INTERNAL", "emulator error", "see its log")
        finally:
            self._halts.pop(delivery.delivery_id, None)
        failed = self._state.delivery_progress(delivery).failed.count > 0 or any(
            self._state.transfers[t].state is TransferState.FAILED for t in delivery.transfer_ids
        )
        delivery.state = DeliveryState.FAILED if failed else DeliveryState.COMPLETED
        delivery.last_modified_on = iso_now()
        self._state.mark_dirty()
        log.info("delivery_finished", delivery_id=delivery.delivery_id, state=delivery.state)

    def _drop(self, delivery: Delivery) -> bool:
        """Apply the PausedBacklog model; True when the delivery is left as it is, for ever."""
        self._dropped.discard(delivery.delivery_id)
        now = iso_now()
        stall = self._paused_backlog is PausedBacklog.STALL
        for transfer_id in delivery.transfer_ids:
            transfer = self._state.transfers[transfer_id]
            if transfer.state not in _UNFINISHED:
                continue
            transfer.last_modified_on = now
            if stall:
                transfer.state = TransferState.CANCELLED
                continue
            for index, obj in enumerate(transfer.objects, start=transfer.first_index):
                if not delivery.outcomes[index]:
                    outcome = FileOutcome(
                        obj["relativePath"], OutcomeKind.FAILED, 0, PAUSED_CODE, "job paused"
                    )
                    self._record(delivery, transfer, outcome)
                    delivery.outcomes[index] = ObjectOutcome.FAILED
            transfer.state = TransferState.FAILED
            transfer.error = TransferError(PAUSED_CODE, "job paused", "backlog cleared on pause")
        delivery.abandoned = stall
        self._state.mark_dirty()
        log.info("emulator_delivery_dropped", delivery_id=delivery.delivery_id, stalled=stall)
        return stall

    async def _run_transfer(self, delivery: Delivery, transfer: Transfer) -> None:
        async with self._slots:
            await self._wait_runnable(delivery)
            now = iso_now()
            transfer.state = TransferState.IN_PROGRESS
            transfer.last_modified_on = now
            if delivery.state is DeliveryState.CREATED:
                delivery.state = DeliveryState.IN_PROGRESS
                delivery.last_modified_on = now
            self._state.mark_dirty()
            log.debug("transfer_started", transfer_id=transfer.transfer_id)
            job = self._state.jobs.get(delivery.job_id)
            growing_idle_s = None if job is None else job.growing_idle_s
            source = self._state.profiles[delivery.source_profile_id].root
            destination = self._state.profiles[delivery.dest_profile_id].root
            halt = self._halts[delivery.delivery_id]
            throttle = Throttle(self._bandwidth_bps, halt)
            first_failure: FileOutcome | None = None
            for index, obj in enumerate(transfer.objects, start=transfer.first_index):
                if delivery.outcomes[index]:
                    continue  # known from before an emulator restart
                await self._wait_runnable(delivery)
                kinds: list[OutcomeKind] = []
                copies = self._copy_object(obj, source, destination, throttle, growing_idle_s)
                async for outcome in copies:
                    self._record(delivery, transfer, outcome)
                    kinds.append(outcome.kind)
                    if outcome.kind is OutcomeKind.FAILED and first_failure is None:
                        first_failure = outcome
                delivery.outcomes[index] = _combine(kinds)
            self._finish_transfer(transfer, first_failure)

    async def _wait_runnable(self, delivery: Delivery) -> None:
        """Raise _Dropped once the job dropped the delivery; wait while the job is paused
        (a job that keeps its backlog goes on where it was when resumed)."""
        while True:
            if delivery.delivery_id in self._dropped:
                raise _Dropped
            job = self._state.jobs.get(delivery.job_id)
            if job is None or not job.paused:
                return
            await asyncio.sleep(PAUSE_POLL_S)

    async def _copy_object(
        self,
        obj: JsonDict,
        source: Path,
        destination: Path,
        throttle: Throttle,
        growing_idle_s: float | None,
    ) -> AsyncIterator[FileOutcome]:
        relative_path: str = obj["relativePath"]
        files = [relative_path]
        if obj.get("isDirectory", False):
            try:
                files = await self._in_pool(list_directory, source, destination, relative_path)
            except OSError as exc:
                code = _DIRECTORY_ERROR_CODES.get(type(exc), "SOURCE_UNREADABLE")
                yield FileOutcome(relative_path, OutcomeKind.FAILED, 0, code, str(exc))
                return
        expected_size_bytes = int(obj.get("sizeInBytes") or 0)
        for path in files:
            copy = functools.partial(
                copy_file,
                expected_size_bytes=expected_size_bytes,
                injected_failure=self._faults.path_fails(path),
                growing_idle_s=growing_idle_s,
            )
            try:
                yield await self._in_pool(copy, source, destination, path, throttle)
            except CopyCancelledError:
                if self._stop.is_set():
                    raise asyncio.CancelledError from None  # shutting down: resumed later
                raise _Dropped from None

    async def _in_pool(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def _record(self, delivery: Delivery, transfer: Transfer, outcome: FileOutcome) -> None:
        tally = _tally(transfer.progress, outcome.kind)
        tally.count += 1
        tally.bytes += outcome.size_bytes
        now = iso_now()
        transfer.last_modified_on = now
        delivery.last_modified_on = now
        delivery.last_event_time = now
        source = self._state.profiles.get(delivery.source_profile_id)
        transfer.files.append(
            {
                "state": "FAILED" if outcome.kind is OutcomeKind.FAILED else "COMPLETED",
                "transferId": transfer.transfer_id,
                "url": (source.url.rstrip("/") if source else "") + outcome.relative_path,
                "sizeInBytes": outcome.size_bytes,
                "lastEventTime": now,
                "fileType": "FILE",
            }
        )
        self._state.mark_dirty()
        if outcome.kind is OutcomeKind.FAILED:
            log.info(
                "emulator_object_failed",
                delivery_id=delivery.delivery_id,
                relative_path=outcome.relative_path,
                code=outcome.error_code,
            )

    def _finish_transfer(self, transfer: Transfer, first_failure: FileOutcome | None) -> None:
        transfer.last_modified_on = iso_now()
        if first_failure is None:
            transfer.state = TransferState.COMPLETED
        else:
            transfer.state = TransferState.FAILED
            failed = transfer.progress.failed.count
            transfer.error = TransferError(
                code=first_failure.error_code,
                message=f"{failed} object(s) failed",
                reason=f"{first_failure.relative_path}: {first_failure.error}",
            )
        self._state.mark_dirty()
        log.debug("transfer_finished", transfer_id=transfer.transfer_id, state=transfer.state)
