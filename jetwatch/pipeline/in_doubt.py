"""In-doubt batches: SUBMITTING with no submission of ours on its way (a crash, a lost answer).

Each is resolved through its target's ``find_submission`` before anything is sent again: a
submission with exactly its files is adopted, a provable absence re-opens the batch. Rounds
that could not ask the target back off (1 s → 60 s); batches whose target's API is down
wait for it without counting as failures.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import structlog

from jetwatch.config.settings import FolderSettings
from jetwatch.domain.backoff import Backoff, Jitter
from jetwatch.domain.clock import Clock
from jetwatch.domain.fleet import Acting, OwnsEverything
from jetwatch.domain.states import BatchRow
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.wake import Stage, Wakeups
from jetwatch.errors import ApiError, NotFoundError
from jetwatch.pipeline.presence import live_files, submit_objects
from jetwatch.pipeline.submissions import Submissions
from jetwatch.targets.registry import TargetRegistry

log = structlog.get_logger(__name__)

ROUND_BACKOFF = Backoff(1.0, 60.0, Jitter.EQUAL)
API_RECHECK_S = 1.0  # in-doubt batches waiting for their target's API to answer


class InDoubtResolver:
    """Settles SUBMITTING batches no submit of this process is waiting for."""

    def __init__(
        self,
        ledger: LedgerStore,
        targets: TargetRegistry,
        folders: Callable[[], Mapping[str, FolderSettings]],
        submissions: Submissions,
        *,
        wakeups: Wakeups,
        clock: Clock,
        ownership: Acting | None = None,
        inherited_grace_s: float = 0.0,
    ) -> None:
        self._ownership = ownership or OwnsEverything()
        # A batch left SUBMITTING by a previous owner that was cut off (not killed) may
        # still have its POST on the way: look for it only once that POST has timed out.
        self._grace_s = inherited_grace_s
        self._ledger = ledger
        self._targets = targets
        self._folders = folders
        self._submissions = submissions
        self._wakeups = wakeups
        self._clock = clock
        self._due_at = 0.0  # when SUBMITTING batches may be resolved (again), monotonic
        self._failures = 0

    @property
    def due_at(self) -> float:
        return self._due_at

    def backoff(self) -> None:
        """A round (or one submission's resolution) could not ask the target: wait longer."""
        self._failures += 1
        delay_s = ROUND_BACKOFF.delay_s(self._failures - 1, random.random())
        self._due_at = self._clock.monotonic() + delay_s

    async def resolve_due(self, posting: set[int]) -> float | None:
        """Resolve in-doubt batches when due; when to look again (None: nothing left).

        ``posting`` are the batches whose submission is on its way in this process.
        """
        now = self._clock.monotonic()
        if now < self._due_at:
            return self._due_at
        unresolved, api_waits = 0, False
        folders = self._folders()
        for batch in await self._ledger.in_doubt_batches():
            folder = folders.get(batch.folder)
            if folder is None or batch.id in posting:
                continue
            if now < self._ownership.owned_since(batch.folder) + self._grace_s:
                api_waits = True  # inherited with the folder: its POST may still land
                continue
            if not self._targets.api(folder.target).ok:
                api_waits = True
                continue
            unresolved += not await self.resolve_one(batch, folder)
        if unresolved:
            self.backoff()
            return self._due_at
        self._failures = 0
        return now + API_RECHECK_S if api_waits else None

    async def resolve_one(self, batch: BatchRow, folder: FolderSettings) -> bool:
        """Adopt the target's submission of exactly this batch's files, else submit again.

        False when the target could not be asked: the batch stays SUBMITTING, tried again.
        """
        target = self._targets.target(folder.label)
        if batch.job_id is None or target is None:
            await self._submissions.reopen(batch, self._clock.wall(), "in doubt without a job id")
            return True
        # Only files that were submitted: GONE ones were dropped before sending.
        files = live_files(await self._ledger.batch_files(batch.id))
        known = await self._ledger.known_delivery_ids()
        try:
            found = await target.find_submission(
                submit_objects(folder, files), known, ident=batch.job_id
            )
        except NotFoundError:
            found = None  # the job is gone: submitting again meets the 404 and holds the batch
        except ApiError as exc:
            log.warning("in_doubt_unresolved", batch_id=batch.id, error=str(exc))
            return False
        if found is not None:
            log.info("in_doubt_adopted", batch_id=batch.id, delivery_id=found)
            await self._submissions.accepted(batch, folder, files, found)
        else:
            log.info("in_doubt_not_found", batch_id=batch.id)
            reason = "not received by the target: submitting again"
            await self._submissions.reopen(batch, self._clock.wall(), reason)
            self._wakeups.wake(Stage.DELIVER)
        return True
