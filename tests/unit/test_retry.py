"""Pure retry decisions: backoff delays and the retry-whole / split / give-up plan."""

from __future__ import annotations

from jetwatch.domain.retry import plan_retry
from jetwatch.domain.states import BatchRow, BatchState, FileRow, FileState

NOW = 1_700_000_000.0  # the fake clock: every decision takes ``now`` as an argument


def batch(attempt: int = 1, parent_id: int | None = None, n: int = 4) -> BatchRow:
    return BatchRow(
        id=10,
        folder="f",
        state=BatchState.SUBMITTED,
        job_id="job",
        delivery_id="d",
        attempt=attempt,
        parent_id=parent_id,
        not_before=NOW,
        created_at=NOW,
        submitted_at=NOW,
        updated_at=NOW,
        held_reason=None,
        file_count=n,
        total_bytes=n,
        last_error=None,
    )


def files(n: int) -> list[FileRow]:
    return [
        FileRow(i, "f", f"{i}.bin", 1, 1, i, FileState.SUBMITTED, 10, 0, NOW, NOW, None, False)
        for i in range(1, n + 1)
    ]


def test_first_failure_of_a_batch_retries_it_whole() -> None:
    """Jet skips what already arrived, so the cheap first move is the same batch again."""
    plan = plan_retry(batch(), files(4), 3, 2.0, NOW, rand=lambda: 0.0)
    assert plan.give_up == ()
    [retry] = plan.retries
    assert retry.file_ids == (1, 2, 3, 4)
    assert retry.attempt == 2
    assert retry.not_before == NOW + 1.0


def test_second_failure_splits_in_halves() -> None:
    """A retry that failed again is split, so one bad file cannot hold the others back."""
    plan = plan_retry(batch(attempt=2), files(5), 3, 2.0, NOW, rand=lambda: 1.0)
    assert [r.file_ids for r in plan.retries] == [(1, 2), (3, 4, 5)]
    assert [r.attempt for r in plan.retries] == [2, 2]
    assert all(r.not_before == NOW + 4.0 for r in plan.retries)


def test_split_parts_split_again_down_to_single_files() -> None:
    """A failed part (parent set) splits at once; a lone file starts counting at 1."""
    plan = plan_retry(batch(attempt=2, parent_id=9, n=2), files(2), 3, 0.0, NOW)
    assert [(r.file_ids, r.attempt) for r in plan.retries] == [((1,), 1), ((2,), 1)]


def test_first_failure_of_a_split_part_does_not_retry_whole() -> None:
    """Attempt 1 with a parent is a part of a failed batch: it splits instead."""
    plan = plan_retry(batch(attempt=1, parent_id=9, n=3), files(3), 3, 0.0, NOW)
    assert [r.file_ids for r in plan.retries] == [(1,), (2, 3)]


def test_single_file_is_retried_until_max_attempts_then_given_up() -> None:
    """A file failing alone gets max_attempts tries, with growing backoff, then FAILED."""
    waits = []
    for attempt in (1, 2):
        plan = plan_retry(batch(attempt=attempt, n=1), files(1), 3, 1.0, NOW, rand=lambda: 1.0)
        [retry] = plan.retries
        assert (retry.file_ids, retry.attempt, plan.give_up) == ((1,), attempt + 1, ())
        waits.append(retry.not_before - NOW)
    assert waits == [1.0, 2.0]
    last = plan_retry(batch(attempt=3, n=1), files(1), 3, 1.0, NOW)
    assert (last.retries, last.give_up) == ((), (1,))


def test_max_attempts_one_gives_a_lone_file_up_at_once() -> None:
    """With max_attempts = 1 a single-file batch is not retried."""
    plan = plan_retry(batch(attempt=1, n=1), files(1), 1, 5.0, NOW)
    assert plan == type(plan)((), (1,))


def test_every_file_is_planned_exactly_once() -> None:
    """Retries and give-ups together hold each file of the batch once (the ledger checks it)."""
    for attempt, parent in ((1, None), (2, None), (1, 3), (4, 3)):
        for n in (1, 2, 3, 7, 100):
            plan = plan_retry(batch(attempt, parent, n), files(n), 3, 1.0, NOW)
            planned = [i for r in plan.retries for i in r.file_ids] + list(plan.give_up)
            assert sorted(planned) == list(range(1, n + 1))
            assert all(r.not_before >= NOW for r in plan.retries)


def test_repeated_failures_isolate_one_bad_file_in_few_rounds() -> None:
    """Simulated rounds: the bad file ends alone and given up; good files leave quickly."""
    bad, max_attempts = 6, 2
    queue = [(tuple(range(1, 9)), 1, None)]
    given_up: list[int] = []
    succeeded: set[int] = set()
    rounds = 0
    while queue:
        rounds += 1
        ids, attempt, parent = queue.pop(0)
        if bad not in ids:
            succeeded.update(ids)
            continue
        rows = [f for f in files(8) if f.id in ids]
        plan = plan_retry(batch(attempt, parent, len(ids)), rows, max_attempts, 0.0, NOW)
        given_up += plan.give_up
        queue += [(r.file_ids, r.attempt, 10) for r in plan.retries]
    assert given_up == [bad]
    assert succeeded == set(range(1, 9)) - {bad}
    assert rounds < 20
