"""Deliver loop: settled files → batches → ``target.submit`` → ledger, exactly once.

Every step is written to the ledger before the action it allows: a batch is SUBMITTING
before its submission (a Jet delivery POST, an IM job run, a JetStream transfer). One
whose outcome is unknown (or a crash mid-submit) leaves the batch SUBMITTING, "in doubt";
it is resolved with ``target.find_submission`` before anything is submitted again.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

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
    JetProtocolError,
    JetRejectedError,
    LedgerUnavailableError,
)
from jetwatch.ledger import BatchRow, FileRow, FileState, LedgerStore
from jetwatch.registry import TargetRegistry, TargetState
from jetwatch.retry import backoff_s, plan_retry
from jetwatch.targets.base import SubmitObject, Target
from jetwatch.wakeup import sleep_or_wake

log = structlog.get_logger(__name__)

FOLDER_HELD = "folder unavailable"  # held_reason prefix of batches this loop releases itself
FOLDER_RECHECK_S = 1.0  # how often a held folder's root is looked at again (one stat)
UNRESOLVED_RECHECK_S = 1.0  # batches waiting for the API or their target to resolve
PAUSED_REASON = {"jet": "job paused", "integration-manager": "job config not active"}


def submit_objects(folder: FolderSettings, files: Sequence[FileRow]) -> list[SubmitObject]:
    """What a target is given of a batch: relative path, local path, size."""
    return [SubmitObject(f.relpath, folder.path / f.relpath, f.size) for f in files]


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
        targets: TargetRegistry,
        folders: Callable[[], Mapping[str, FolderSettings]],
        *,
        on_submitted: Callable[[], None] = lambda: None,
        on_gone: Callable[[str, Sequence[FileRow]], None] = lambda label, rows: None,
        max_concurrent_posts: int = 4,
    ) -> None:
        self._ledger = ledger
        self._targets = targets
        self._folders = folders
        self._on_submitted = on_submitted
        self._on_gone = on_gone  # the folder's intake forgets them: back unchanged = sent
        self._posts = asyncio.Semaphore(max_concurrent_posts)
        self._wake = asyncio.Event()
        self._stopping = False
        self._posting: set[int] = set()  # SUBMITTING in this process: a submit is on its way
        self._in_doubt_at = 0.0  # when SUBMITTING batches may be resolved (again)
        self._in_doubt_failures = 0
        self._api_waits = False  # in-doubt batches whose target's API is down
        self._folders_at = 0.0  # when folder-held batches are looked at again

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
                next_at = time.time() + 2.0
            delay = 5.0 if next_at is None else max(0.0, next_at - time.time())
            if self._stopping:
                return
            await sleep_or_wake(self._wake, min(delay, 5.0))

    async def run_once(self, now: float) -> float | None:
        """Form due batches, resolve in-doubt ones, submit open ones; next wake-up time."""
        next_at = self.form_batches(now)
        candidates = [next_at, self._release_folder_holds(now)]
        candidates.append(await self._resolve_due(now))
        if self._api_waits:
            candidates.append(now + UNRESOLVED_RECHECK_S)  # resolve soon after the API is up
        await self.submit_open(now)
        # Set during this round: a submit that stayed in doubt, a batch held for its folder.
        candidates += [t for t in (self._in_doubt_at, self._folders_at) if t > now]
        for label in self._folders():
            due = self._ledger.next_open_at(label)
            if due is not None and self._targets.status(label).ident is None:
                # Not sendable before the target resolves: looking again at once would spin.
                due = max(due, now + UNRESOLVED_RECHECK_S)
            candidates.append(due)
        times = [t for t in candidates if t is not None]
        return min(times) if times else None

    async def _resolve_due(self, now: float) -> float | None:
        """Resolve in-doubt batches when due; when to try again (None: nothing left).

        They come from a crash, a submission whose outcome is unknown, or a ledger write
        that failed after the target accepted it.
        """
        if now < self._in_doubt_at:
            return self._in_doubt_at
        if not await self.resolve_in_doubt():
            self._in_doubt_failures = 0
            return None
        self._in_doubt_failures += 1
        self._in_doubt_at = now + backoff_s(self._in_doubt_failures, 1.0, 60.0)
        return self._in_doubt_at

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
        if not batches:
            return
        # Wait for every POST before raising: one left running would race the next round.
        results = await asyncio.gather(
            *(self._submit_guarded(b, folders[b.folder]) for b in batches),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _submit_guarded(self, batch: BatchRow, folder: FolderSettings) -> None:
        async with self._posts:
            if not self._stopping:  # shutting down: no new POSTs, the batch stays OPEN
                await self.submit(batch, folder)

    async def submit(self, batch: BatchRow, folder: FolderSettings) -> None:
        """Submit one OPEN batch; every outcome is written to the ledger."""
        state = self._targets.status(folder.label)
        target = self._targets.target(folder.label)
        if state.paused or state.problem:  # also a job the API says does not exist
            reason = state.problem or PAUSED_REASON.get(state.kind, "target paused")
            self._ledger.mark_held(batch.id, reason, time.time())
            log.warning("batch_held", batch_id=batch.id, folder=folder.label, reason=reason)
            return
        if state.ident is None or target is None:
            return  # not resolved yet (API down): stays OPEN, retried when it resolves
        files = self._present_files(batch, folder)
        if not files:
            return
        self._ledger.mark_submitting(batch.id, state.ident, time.time())
        self._posting.add(batch.id)
        try:
            with structlog.contextvars.bound_contextvars(batch_id=batch.id, folder=folder.label):
                await self._post(batch, folder, target, state, files)
        finally:
            self._posting.discard(batch.id)

    async def _post(
        self,
        batch: BatchRow,
        folder: FolderSettings,
        target: Target,
        state: TargetState,
        files: list[FileRow],
    ) -> None:
        now = time.time()
        try:
            handle = await target.submit(submit_objects(folder, files), ident=state.ident)
        except (JetOutcomeUnknownError, JetProtocolError) as exc:
            # A garbled answer is still an answer: the target may well have accepted it.
            log.warning("delivery_outcome_unknown", error=str(exc))
            if not await self._resolve_one(self._ledger.batch(batch.id), folder):
                self._in_doubt_failures += 1
                self._in_doubt_at = time.time() + backoff_s(self._in_doubt_failures, 1.0, 60.0)
        except JetJobPausedError:
            self._hold(batch, folder, PAUSED_REASON.get(state.kind, "target paused"), paused=True)
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
            self._accepted(batch, folder, files, handle)

    def _accepted(
        self, batch: BatchRow, folder: FolderSettings, files: list[FileRow], handle: str
    ) -> None:
        self._ledger.mark_submitted(batch.id, handle, time.time())
        metrics.FILES_SUBMITTED.labels(folder.label).inc(len(files))
        size = sum(f.size for f in files)
        log.info("delivery_submitted", delivery_id=handle, files=len(files), bytes=size)
        self._on_submitted()

    def _present_files(self, batch: BatchRow, folder: FolderSettings) -> list[FileRow]:
        """Files of the batch still on disk as settled; the others are GONE (not sent).

        A missing or unreadable folder (a share that dropped) proves nothing about its
        files: the batch is HELD until the folder is back.
        """
        files = live_files(self._ledger.batch_files(batch.id))
        present, gone, problem = check_files(folder.path, files)
        if problem:
            reason = f"{FOLDER_HELD}: {problem}"
            self._ledger.mark_held(batch.id, reason, time.time())
            self._folders_at = max(self._folders_at, time.time() + FOLDER_RECHECK_S)
            log.warning("batch_held", batch_id=batch.id, folder=folder.label, reason=reason)
            return []
        if gone:
            self._ledger.mark_gone([f.id for f in gone], time.time())
            self._on_gone(folder.label, gone)
            metrics.FILES_VANISHED.labels(folder.label).inc(len(gone))
            for f in gone:
                log.warning("file_gone_before_submit", folder=folder.label, path=f.relpath)
        return present

    def _release_folder_holds(self, now: float) -> float | None:
        """Release batches held for an unavailable folder once it is back; next look."""
        if now < self._folders_at:
            return self._folders_at
        folders = self._folders()
        held = [
            b
            for b in self._ledger.held_batches()
            if (b.held_reason or "").startswith(FOLDER_HELD) and b.folder in folders
        ]
        back = [b.id for b in held if folder_problem(folders[b.folder].path) is None]
        if back:
            released = self._ledger.release_held(back, now)
            log.info("batches_released", reason="folder available again", batches=released)
        if len(back) == len(held):
            return None
        self._folders_at = now + FOLDER_RECHECK_S
        return self._folders_at

    def _hold(
        self, batch: BatchRow, folder: FolderSettings, reason: str, *, paused: bool = False
    ) -> None:
        self._ledger.mark_held(batch.id, reason, time.time())
        self._targets.note_refused(folder.label, reason, paused=paused)
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

    async def resolve_in_doubt(self) -> int:
        """Settle every SUBMITTING batch no submit of ours is waiting for; how many remain.

        Batches whose target's API is down are left for later without counting as failures.
        """
        folders = self._folders()
        unresolved = 0
        self._api_waits = False
        for batch in self._ledger.in_doubt_batches():
            folder = folders.get(batch.folder)
            if folder is None or batch.id in self._posting:
                continue
            if not self._targets.api(folder.target).ok:
                self._api_waits = True
                continue
            unresolved += not await self._resolve_one(batch, folder)
        return unresolved

    async def _resolve_one(self, batch: BatchRow, folder: FolderSettings) -> bool:
        """Adopt the target's submission of exactly this batch's files, else submit again.

        False when the target could not be asked: the batch stays SUBMITTING, tried again.
        """
        target = self._targets.target(folder.label)
        if batch.job_id is None or target is None:
            self._reopen(batch, time.time(), "in doubt without a job id")
            return True
        # Only files that were submitted: GONE ones were dropped before sending.
        files = live_files(self._ledger.batch_files(batch.id))
        known = self._ledger.known_delivery_ids()
        objects = submit_objects(folder, files)
        try:
            found = await target.find_submission(objects, known, ident=batch.job_id)
        except JetNotFoundError:
            found = None  # the job is gone: submitting again meets the 404 and holds the batch
        except JetError as exc:
            log.warning("in_doubt_unresolved", batch_id=batch.id, error=str(exc))
            return False
        if found is not None:
            log.info("in_doubt_adopted", batch_id=batch.id, delivery_id=found)
            self._accepted(batch, folder, files, found)
        else:
            log.info("in_doubt_not_found", batch_id=batch.id)
            self._reopen(batch, time.time(), "not received by the target: submitting again")
            self.wake()
        return True


def live_files(files: Sequence[FileRow]) -> list[FileRow]:
    """The rows of a batch that are still to be (or were) sent: not GONE."""
    return [f for f in files if f.state != FileState.GONE]


def folder_problem(root: Path) -> str | None:
    """Why the folder cannot be looked into now (missing, not a directory), or None."""
    try:
        st = os.stat(root)
    except OSError as exc:
        return f"{root}: {exc.strerror or exc}"
    return None if stat.S_ISDIR(st.st_mode) else f"{root}: not a directory"


def check_files(
    root: Path, files: Sequence[FileRow]
) -> tuple[list[FileRow], list[FileRow], str | None]:
    """(unchanged files, files gone or changed, why nothing can be judged now)."""
    problem = folder_problem(root)
    if problem is not None:
        return [], [], problem
    present: list[FileRow] = []
    gone: list[FileRow] = []
    for row in files:
        try:
            st = os.stat(root / row.relpath, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            gone.append(row)
            continue
        except OSError as exc:  # EACCES, EIO, ESTALE: unknown, not gone
            return [], [], f"{row.relpath}: {exc.strerror or exc}"
        same = (st.st_size, st.st_mtime_ns, st.st_ino) == (row.size, row.mtime_ns, row.inode)
        (present if same and stat.S_ISREG(st.st_mode) else gone).append(row)
    return present, gone, None
