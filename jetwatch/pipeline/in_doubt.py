"""In-doubt batches: SUBMITTING with no submission of ours on its way (a crash, a lost answer).

Each is settled through its target's ``find_submission`` (a :class:`Lookup`) before
anything is sent again:

- found: the submission with exactly its files is adopted;
- not received (proven): the batch is opened and sent again at once;
- unproven (the Jet API cannot be asked: no listing, no idempotency key): the batch is sent
  again only once the first submission, if it exists, can no longer be copying. After the
  target's grace (time for an accepted delivery to show as in progress), the work in flight
  that may be it is noted; the batch waits until none of that is in progress any more —
  work that started later cannot be the first delivery — and at most ``max_wait_s``. Jet
  then skips everything that arrived: a second delivery at worst, never a second copy.

Waiting batches are counted (``jetwatch_in_doubt_waiting``) and shown by the daemon's
status; how each batch was settled is counted in ``jetwatch_in_doubt_total{outcome}``.
Rounds that could not ask the target back off (1 s → 60 s); batches whose target's API is
down wait for it without counting as failures.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from jetwatch import metrics
from jetwatch.config.settings import FolderSettings
from jetwatch.domain.backoff import Backoff, Jitter
from jetwatch.domain.clock import Clock, wall_due_in_s
from jetwatch.domain.fleet import Acting, OwnsEverything
from jetwatch.domain.states import BatchRow
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.target import Lookup
from jetwatch.domain.wake import Stage, Wakeups
from jetwatch.errors import ApiError, NotFoundError
from jetwatch.pipeline.presence import live_files, submit_objects
from jetwatch.pipeline.submissions import Submissions
from jetwatch.targets.registry import TargetRegistry

log = structlog.get_logger(__name__)

ROUND_BACKOFF = Backoff(1.0, 60.0, Jitter.EQUAL)
API_RECHECK_S = 1.0  # in-doubt batches waiting for their target's API to answer
WAIT_RECHECK_S = 2.0  # a batch waiting for in-flight work to end looks again this often


class Outcome(StrEnum):
    """How an in-doubt batch was settled (the ``outcome`` label of jetwatch_in_doubt_total)."""

    ADOPTED = "adopted"
    NOT_RECEIVED = "not_received"
    RESENT_IDLE = "resent_idle"
    RESENT_AFTER_MAX_WAIT = "resent_after_max_wait"


class Step(StrEnum):
    """What one look at an in-doubt batch came to."""

    SETTLED = "settled"
    WAITING = "waiting"
    UNASKED = "unasked"  # the target could not be asked: stays SUBMITTING, tried again


@dataclass(slots=True)
class _Wait:
    """A batch waiting for the work in flight that may be its first delivery to end."""

    folder: str
    since_wall: float  # when the wait began (for people)
    deadline: float  # monotonic: sent again anyway after this
    watched: frozenset[str]  # in flight after the grace: what may be the first delivery
    left: int  # how many of them were still in flight at the last look
    max_wait_s: float
    decided: bool = True  # False during the grace, before ``watched`` is noted


def wait_verdict(wait: _Wait, in_flight: frozenset[str], now: float) -> Outcome | None:
    """Pure: send again (and why) once nothing watched is in flight or the wait is over."""
    if not wait.watched & in_flight:
        return Outcome.RESENT_IDLE
    if now >= wait.deadline:
        return Outcome.RESENT_AFTER_MAX_WAIT
    return None


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
        self._waits: dict[int, _Wait] = {}
        self._look_at: dict[int, float] = {}  # batch id → its next look (monotonic)

    @property
    def due_at(self) -> float:
        return self._due_at

    @property
    def next_look(self) -> float | None:
        """When a waiting batch is to be looked at again (monotonic), if any waits."""
        return min(self._look_at.values(), default=None)

    def waiting(self) -> list[dict[str, Any]]:
        """The batches waiting now, for the daemon's status."""
        now = self._clock.monotonic()
        return [
            {
                "batch_id": batch_id,
                "folder": wait.folder,
                "since": wait.since_wall,
                "in_flight": wait.left if wait.decided else None,  # None: in the grace
                "max_wait_s": wait.max_wait_s,
                "resend_at_latest_in_s": max(0.0, round(wait.deadline - now, 1)),
            }
            for batch_id, wait in sorted(self._waits.items())
        ]

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
        unasked, api_waits = 0, False
        folders = self._folders()
        batches = await self._ledger.in_doubt_batches()
        self._forget({b.id for b in batches})
        for batch in batches:
            folder = folders.get(batch.folder)
            if folder is None or batch.id in posting:
                continue
            if self._look_at.get(batch.id, 0.0) > now:
                continue
            if now < self._ownership.owned_since(batch.folder) + self._grace_s:
                api_waits = True  # inherited with the folder: its POST may still land
                continue
            if not self._targets.api(folder.target).ok:
                api_waits = True
                continue
            unasked += await self.resolve_one(batch, folder) is Step.UNASKED
        if unasked:
            self.backoff()
            return self._due_at
        self._failures = 0
        looks = list(self._look_at.values())
        if api_waits:
            looks.append(now + API_RECHECK_S)
        return min(looks, default=None)

    async def resolve_one(self, batch: BatchRow, folder: FolderSettings) -> Step:
        """Adopt the target's submission of exactly this batch's files, send it again when
        proven absent, else wait until what may be the first one is over (module docstring)."""
        target = self._targets.target(folder.label)
        if batch.job_id is None or target is None:
            await self._submissions.reopen(batch, self._clock.wall(), "in doubt without a job id")
            return Step.SETTLED
        # Only files that were submitted: GONE ones were dropped before sending.
        files = live_files(await self._ledger.batch_files(batch.id))
        known = await self._ledger.known_delivery_ids()
        try:
            lookup = await target.find_submission(
                submit_objects(folder, files), known, ident=batch.job_id, since=batch.updated_at
            )
        except NotFoundError:
            # The job is gone: submitting again meets the 404 and holds the batch.
            lookup = Lookup.not_received()
        except ApiError as exc:
            log.warning("in_doubt_unresolved", batch_id=batch.id, error=str(exc))
            return Step.UNASKED
        if lookup.handle is not None:
            log.info("in_doubt_adopted", batch_id=batch.id, delivery_id=lookup.handle)
            self._settled(batch.id, Outcome.ADOPTED)
            await self._submissions.accepted(batch, folder, files, lookup.handle)
            return Step.SETTLED
        if lookup.absent:
            log.info("in_doubt_not_found", batch_id=batch.id)
            await self._send_again(batch, Outcome.NOT_RECEIVED, "not received by the target")
            return Step.SETTLED
        return await self._wait(batch, folder, lookup)

    async def _wait(self, batch: BatchRow, folder: FolderSettings, lookup: Lookup) -> Step:
        now, wall = self._clock.monotonic(), self._clock.wall()
        grace_left_s = wall_due_in_s(batch.updated_at + lookup.grace_s, wall)
        wait = self._waits.get(batch.id)
        if wait is None:
            deadline = now + grace_left_s + lookup.max_wait_s
            wait = _Wait(folder.label, wall, deadline, frozenset(), 0, lookup.max_wait_s, False)
            self._waits[batch.id] = wait
            metrics.IN_DOUBT_WAITING.set(len(self._waits))
        if grace_left_s > 0:
            # An accepted delivery may not show as in progress yet: decide after the grace.
            self._look_at[batch.id] = now + grace_left_s
            return Step.WAITING
        if not wait.decided:
            wait.watched, wait.left, wait.decided = lookup.in_flight, len(lookup.in_flight), True
            wait.deadline = now + lookup.max_wait_s
            log.info(
                "in_doubt_waiting",
                batch_id=batch.id,
                in_flight=wait.left,
                max_wait_s=lookup.max_wait_s,
            )
        verdict = wait_verdict(wait, lookup.in_flight, now)
        if verdict is None:
            wait.left = len(wait.watched & lookup.in_flight)
            self._look_at[batch.id] = now + WAIT_RECHECK_S
            return Step.WAITING
        if verdict is Outcome.RESENT_AFTER_MAX_WAIT:
            log.error(
                "in_doubt_wait_exceeded",
                batch_id=batch.id,
                still_in_flight=len(wait.watched & lookup.in_flight),
                max_wait_s=wait.max_wait_s,
            )
            why = f"still in progress after {wait.max_wait_s:.0f} s"
        else:
            why = "nothing that may be its first delivery is in progress"
        await self._send_again(batch, verdict, f"in doubt: {why}")
        return Step.SETTLED

    async def _send_again(self, batch: BatchRow, outcome: Outcome, why: str) -> None:
        self._settled(batch.id, outcome)
        await self._submissions.reopen(batch, self._clock.wall(), f"{why}: submitting again")
        self._wakeups.wake(Stage.DELIVER)

    def _settled(self, batch_id: int, outcome: Outcome) -> None:
        metrics.IN_DOUBT.labels(outcome.value).inc()
        self._waits.pop(batch_id, None)
        self._look_at.pop(batch_id, None)
        metrics.IN_DOUBT_WAITING.set(len(self._waits))

    def _forget(self, in_doubt: set[int]) -> None:
        """Drop the waits of batches no longer in doubt (settled elsewhere)."""
        for batch_id in set(self._waits) - in_doubt:
            del self._waits[batch_id]
        for batch_id in set(self._look_at) - in_doubt:
            del self._look_at[batch_id]
        metrics.IN_DOUBT_WAITING.set(len(self._waits))
