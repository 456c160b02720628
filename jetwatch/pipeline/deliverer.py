"""Deliver loop: OPEN batches → ``target.submit`` → ledger, exactly once.

Every step is written to the ledger before the action it allows: a batch is SUBMITTING
before its submission (a Jet delivery POST, an IM job run, a JetStream transfer). One
whose outcome is unknown (or a crash mid-submit) leaves the batch SUBMITTING, "in doubt";
:mod:`~jetwatch.pipeline.in_doubt` settles it (adopt, or send again once the first
delivery, if any, can no longer be copying) before anything is submitted again. Each
round first releases the holds that ended (:mod:`~jetwatch.pipeline.holds`).
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Mapping

import structlog

from jetwatch import metrics
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.backoff import Backoff, Jitter
from jetwatch.domain.clock import SYSTEM_CLOCK, Clock, wall_due_in_s
from jetwatch.domain.fleet import Acting, OwnsEverything
from jetwatch.domain.states import BatchRow, FileRow, HoldReason
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.target import Target
from jetwatch.domain.wake import Stage, Wakeups, run_stage
from jetwatch.errors import (
    ApiError,
    AuthError,
    ForbiddenError,
    NotFoundError,
    OutcomeUnknownError,
    PausedError,
    ProtocolError,
    RejectedError,
)
from jetwatch.pipeline.holds import HoldKeeper
from jetwatch.pipeline.in_doubt import InDoubtResolver, Step
from jetwatch.pipeline.presence import check_files, live_files, submit_objects
from jetwatch.pipeline.submissions import Submissions
from jetwatch.targets.kinds import spec_of
from jetwatch.targets.registry import TargetRegistry, TargetState

log = structlog.get_logger(__name__)

UNRESOLVED_RECHECK_S = 1.0  # batches waiting for their target to resolve
IDLE_S = 60.0  # batcher, tracker, targets, ops ring DELIVER; holds and retries say when
AUTH_RETRY_S = 30.0
POST_BACKOFF = Backoff(2.0, 60.0, Jitter.EQUAL)


class Deliverer:
    """Submits OPEN batches of every folder; one instance, at most ``max_concurrent_posts``.

    ``ownership`` says which folders this daemon may act on (a shared ledger's leases):
    it is asked again just before the batch becomes SUBMITTING and before the submission.
    """

    def __init__(
        self,
        ledger: LedgerStore,
        targets: TargetRegistry,
        folders: Callable[[], Mapping[str, FolderSettings]],
        *,
        wakeups: Wakeups,
        clock: Clock = SYSTEM_CLOCK,
        max_concurrent_posts: int = 4,
        ownership: Acting | None = None,
        inherited_grace_s: float = 0.0,
    ) -> None:
        self._ownership = ownership or OwnsEverything()
        self._ledger = ledger
        self._targets = targets
        self._folders = folders
        self._wakeups = wakeups
        self._clock = clock
        self._posts = asyncio.Semaphore(max_concurrent_posts)
        self._stopping = False
        self._posting: set[int] = set()  # SUBMITTING in this process: a submit is on its way
        self._outcomes = Submissions(ledger, targets, wakeups=wakeups, clock=clock)
        self.holds = HoldKeeper(ledger, targets, folders, clock=clock)
        self.in_doubt = InDoubtResolver(
            ledger, targets, folders, self._outcomes, wakeups=wakeups, clock=clock,
            ownership=self._ownership, inherited_grace_s=inherited_grace_s,
        )  # fmt: skip

    def stop_intake(self) -> None:
        """Finish the current round, then stop taking new batches (graceful shutdown)."""
        self._stopping = True
        self._wakeups.wake(Stage.DELIVER)

    async def run(self) -> None:
        await run_stage(
            self._wakeups, Stage.DELIVER, self.run_once, clock=self._clock, idle_s=IDLE_S,
            until=lambda: self._stopping,
        )  # fmt: skip

    async def run_once(self) -> float | None:
        """Release holds, resolve in-doubt batches, submit open ones; when to look again."""
        candidates = [
            await self.holds.release_due(),
            await self.in_doubt.resolve_due(self._posting),
        ]
        await self.submit_open()
        now, wall = self._clock.monotonic(), self._clock.wall()
        # Set during this round: a submit that stayed in doubt, a batch held for its folder.
        looks = (self.in_doubt.due_at, self.in_doubt.next_look, self.holds.recheck_at)
        candidates += [t for t in looks if t is not None and t > now]
        for label in self._folders():
            due_wall = await self._ledger.next_open_at(label)
            if due_wall is None:
                continue
            due = now + wall_due_in_s(due_wall, wall)
            if self._targets.status(label).ident is None:
                # Not sendable before the target resolves: looking again at once would spin.
                due = max(due, now + UNRESOLVED_RECHECK_S)
            candidates.append(due)
        return min((t for t in candidates if t is not None), default=None)

    async def submit_open(self) -> None:
        folders = self._folders()
        due = await self._ledger.open_batches(self._clock.wall())
        batches = [b for b in due if b.folder in folders]
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
            if state.problem:
                await self._outcomes.hold(batch, folder, state.hold_reason, state.problem)
            else:
                await self._outcomes.hold(batch, folder, HoldReason.PAUSED)
            return
        if state.ident is None or target is None:
            return  # not resolved yet (API down): stays OPEN, retried when it resolves
        files = await self._present_files(batch, folder)
        if not files:
            return
        with self._ownership.acting(folder.label) as allowed:
            if not allowed:
                return  # its lease went meanwhile: the batch stays OPEN for the owner
            # Fenced by the lease: raises LeaseLostError (nothing written) without it.
            await self._ledger.mark_submitting(batch.id, state.ident, self._clock.wall())
            self._posting.add(batch.id)
            try:
                with structlog.contextvars.bound_contextvars(
                    batch_id=batch.id, folder=folder.label
                ):
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
        now = self._clock.wall()
        outcomes = self._outcomes
        if not self._ownership.may_act(folder.label):
            # The acting window closed after SUBMITTING was written: nothing was sent.
            log.warning("submission_not_sent", reason="folder lease lapsed before the POST")
            await outcomes.reopen(batch, now, "folder lease lapsed before the submission")
            return
        try:
            # A Path per file of 1,000: built off the loop, which stays responsive.
            objects = await asyncio.to_thread(submit_objects, folder, files)
            handle = await target.submit(objects, ident=state.ident)
        except (OutcomeUnknownError, ProtocolError) as exc:
            # A garbled answer is still an answer: the target may well have accepted it.
            log.warning("delivery_outcome_unknown", error=str(exc))
            step = await self.in_doubt.resolve_one(await self._ledger.batch(batch.id), folder)
            if step is Step.UNASKED:
                self.in_doubt.backoff()
        except PausedError:
            await outcomes.hold(batch, folder, HoldReason.PAUSED, refused=True)
        except NotFoundError:
            await outcomes.hold(batch, folder, HoldReason.NOT_FOUND, refused=True)
        except ForbiddenError:
            fix = spec_of(folder.target).forbidden_fix  # e.g. which role the client needs
            await outcomes.hold(batch, folder, HoldReason.FORBIDDEN, fix, refused=True)
        except AuthError as exc:
            await outcomes.reopen(batch, now + AUTH_RETRY_S, f"credentials refused: {exc}")
        except RejectedError as exc:
            # A 400 that is not a pause: some object is unacceptable. Bisect to find it.
            reason = f"delivery refused ({exc.status}): {exc.body}"
            await outcomes.fail(batch, folder, files, reason)
        except ApiError as exc:
            delay_s = POST_BACKOFF.delay_s(batch.attempt - 1, random.random())
            await outcomes.reopen(batch, now + delay_s, str(exc))
        else:
            await outcomes.accepted(batch, folder, files, handle)

    async def _present_files(self, batch: BatchRow, folder: FolderSettings) -> list[FileRow]:
        """Files of the batch still on disk as settled; the others are GONE (not sent).

        A missing or unreadable folder (a share that dropped) proves nothing about its
        files: the batch is HELD until the folder is back.
        """
        rows = live_files(await self._ledger.batch_files(batch.id))
        present, gone, problem = await asyncio.to_thread(
            functools.partial(check_files, growing=folder.growing), folder.path, rows
        )
        if problem:
            await self._outcomes.hold(batch, folder, HoldReason.FOLDER_UNAVAILABLE, problem)
            self.holds.recheck_folders_soon()
            return []
        if gone:
            await self._ledger.mark_gone([f.id for f in gone], self._clock.wall())
            self._wakeups.files_gone(folder.label, (f.key for f in gone))
            metrics.FILES_VANISHED.labels(folder.label).inc(len(gone))
            for f in gone:
                log.warning("file_gone_before_submit", folder=folder.label, path=f.relpath)
        return present
