"""Pure retry decisions: the retry-or-split plan for a failed batch.

A failed delivery is first retried whole (Jet skips what already arrived, so a retry is
cheap); a retry that fails again is split in halves, down to single files, so one bad file
cannot hold its batch-mates back. A file that fails alone ``max_attempts`` times is given up
(FAILED) and shown.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jetwatch.domain.backoff import Backoff, Jitter
from jetwatch.domain.states import BatchRow, FileRow, RetryPlan

MAX_RETRY_DELAY_S = 300.0


@dataclass(frozen=True, slots=True)
class FailurePlan:
    retries: tuple[RetryPlan, ...]
    give_up: tuple[int, ...]


def plan_retry(
    batch: BatchRow,
    files: Sequence[FileRow],
    max_attempts: int,
    backoff_base_s: float,
    now: float,
    rand: Callable[[], float] = random.random,
) -> FailurePlan:
    """Decide what happens to the files of a failed batch (the ledger applies it at once)."""
    ids = tuple(f.id for f in files)
    # Equal jitter: a retry comes roughly when planned, never at once after a failure.
    backoff = Backoff(backoff_base_s, MAX_RETRY_DELAY_S, Jitter.EQUAL)
    when = now + backoff.delay_s(batch.attempt - 1, rand())
    if len(ids) == 1:
        # For a single-file batch, ``attempt`` counts the failures of this file alone.
        if batch.attempt >= max_attempts:
            return FailurePlan((), ids)
        return FailurePlan((RetryPlan(ids, batch.attempt + 1, when),), ())
    if batch.attempt == 1 and batch.parent_id is None:
        return FailurePlan((RetryPlan(ids, 2, when),), ())
    half = len(ids) // 2
    return FailurePlan(tuple(_part(part, when) for part in (ids[:half], ids[half:])), ())


def _part(ids: tuple[int, ...], when: float) -> RetryPlan:
    # A multi-file part splits again on its next failure (attempt 2); a lone file starts
    # counting its own failures at 1.
    return RetryPlan(ids, 1 if len(ids) == 1 else 2, when)
