"""Tests of batch planning: count and byte limits, linger, max wait, flush, next close time."""

from __future__ import annotations

import pytest

from jetwatch.domain.batching import BatchLimits, Queued, plan_batches


def limits(
    max_files: int = 3, max_bytes: int = 0, linger_s: float = 2.0, max_wait_s: float = 10.0
) -> BatchLimits:
    return BatchLimits(max_files, max_bytes, linger_s, max_wait_s)


def queue(*sizes: int, ready_at: float = 0.0, step_s: float = 0.0) -> list[Queued]:
    return [Queued(i + 1, size, ready_at + i * step_s) for i, size in enumerate(sizes)]


def test_full_batches_close_at_once() -> None:
    """max_files closes batches immediately; the remainder waits."""
    batches, close_at = plan_batches(queue(1, 1, 1, 1, 1, 1, 1), limits(), now=0.0)
    assert batches == [[1, 2, 3], [4, 5, 6]]
    assert close_at == 2.0  # file 7: linger ends before max wait


def test_max_bytes_splits_before_overflow() -> None:
    """A file that would push a batch past max_bytes starts the next batch."""
    batches, close_at = plan_batches(queue(40, 50, 20, 30), limits(10, 100), now=0.0)
    assert batches == [[1, 2]]
    assert close_at == 2.0  # [3, 4] holds 50 bytes and stays open


def test_batch_reaching_max_bytes_exactly_closes() -> None:
    """A batch at exactly max_bytes is full."""
    batches, close_at = plan_batches(queue(60, 40, 5), limits(10, 100), now=0.0)
    assert batches == [[1, 2]]
    assert close_at is not None


def test_oversized_file_forms_a_batch_alone() -> None:
    """A file larger than max_bytes is sent alone, never split or stuck."""
    batches, close_at = plan_batches(queue(10, 500, 10), limits(10, 100), now=0.0)
    assert batches == [[1], [2]]
    assert close_at == 2.0


def test_no_byte_limit_when_zero() -> None:
    """max_bytes = 0 means no byte limit."""
    batches, _ = plan_batches(queue(10**12, 10**12, 10**12), limits(3, 0), now=0.0)
    assert batches == [[1, 2, 3]]


def test_linger_closes_partial_batch() -> None:
    """The last batch closes once nothing new arrived for linger_s."""
    items = queue(1, 1, ready_at=100.0, step_s=1.0)  # ready at 100 and 101
    assert plan_batches(items, limits(), now=102.9) == ([], 103.0)
    assert plan_batches(items, limits(), now=103.0) == ([[1, 2]], None)


def test_max_wait_closes_a_trickle() -> None:
    """Files arriving faster than linger still go out after max_wait_s."""
    items = queue(1, 1, 1, ready_at=0.0, step_s=1.0)
    trickle_limits = limits(max_files=100, linger_s=2.0, max_wait_s=2.5)
    assert plan_batches(items, trickle_limits, now=2.4) == ([], 2.5)
    assert plan_batches(items, trickle_limits, now=2.5) == ([[1, 2, 3]], None)


def test_flush_closes_everything() -> None:
    """flush sends the open batch at once."""
    assert plan_batches(queue(1), limits(), now=0.0, flush=True) == ([[1]], None)


def test_empty_queue() -> None:
    """Nothing queued: no batches, nothing open."""
    assert plan_batches([], limits(), now=0.0) == ([], None)


def test_large_queue_in_one_pass() -> None:
    """100,000 queued files plan into full batches and one remainder."""
    items = queue(*([1] * 100_001))
    batches, close_at = plan_batches(items, limits(max_files=1000), now=0.0)
    assert len(batches) == 100
    assert batches[-1][-1] == 100_000
    assert close_at == 2.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_files": 0, "max_bytes": 0, "linger_s": 0.0, "max_wait_s": 0.0},
        {"max_files": 1, "max_bytes": -1, "linger_s": 0.0, "max_wait_s": 0.0},
        {"max_files": 1, "max_bytes": 0, "linger_s": -1.0, "max_wait_s": 0.0},
    ],
)
def test_invalid_limits_are_refused(kwargs: dict[str, float]) -> None:
    """Limits that would never close a batch are a programming error."""
    with pytest.raises(ValueError, match="must be"):
        BatchLimits(**kwargs)  # type: ignore[arg-type]
