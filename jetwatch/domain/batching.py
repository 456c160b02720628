"""Pure grouping of ready files into delivery batches by count, bytes, linger and age."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """When a batch is full (``max_files``, ``max_bytes``; 0 = no byte limit) or due (times)."""

    max_files: int
    max_bytes: int
    linger_s: float
    max_wait_s: float

    def __post_init__(self) -> None:
        if self.max_files < 1:
            raise ValueError(f"max_files must be >= 1, got {self.max_files}")
        if self.max_bytes < 0 or self.linger_s < 0 or self.max_wait_s < 0:
            raise ValueError("max_bytes, linger_s and max_wait_s must be >= 0")


class Queued(NamedTuple):
    """A ready file waiting for a batch; ``ready_at`` is on the same clock as ``now``.

    A named tuple: the batcher builds one per queued file each round (8,000 a window), on
    the event loop, and a frozen dataclass costs twice as much to build.
    """

    file_id: int
    size: int
    ready_at: float


def plan_batches(
    queued: Sequence[Queued], limits: BatchLimits, now: float, *, flush: bool = False
) -> tuple[list[list[int]], float | None]:
    """Split ``queued`` (in order) into batches to send now, and when the rest is due.

    A batch fills until it holds ``max_files`` files, or until the next file would push it
    past ``max_bytes``; a file larger than ``max_bytes`` on its own forms a batch alone. A
    full batch closes at once. So does a batch that reached ``max_bytes`` exactly, since
    only empty files could still join it. The last, partial batch closes when its oldest
    file waited ``max_wait_s``, when its newest file waited ``linger_s`` (nothing new
    arrived for a while), or on ``flush`` (shutdown, or a caller that wants it now).
    Otherwise it stays open and the second value is when it will close; None when nothing
    is left open. O(n), one pass.
    """
    closed: list[list[int]] = []
    ids: list[int] = []
    size_sum = 0
    oldest = newest = 0.0
    for item in queued:
        if ids and limits.max_bytes and size_sum + item.size > limits.max_bytes:
            closed.append(ids)
            ids, size_sum = [], 0
        if not ids:
            oldest = newest = item.ready_at
        ids.append(item.file_id)
        size_sum += item.size
        # min/max rather than first/last: robust if the queue is not in ready order.
        oldest = min(oldest, item.ready_at)
        newest = max(newest, item.ready_at)
        if len(ids) >= limits.max_files or (limits.max_bytes and size_sum >= limits.max_bytes):
            closed.append(ids)
            ids, size_sum = [], 0
    if not ids:
        return closed, None
    close_at = min(oldest + limits.max_wait_s, newest + limits.linger_s)
    if flush or now >= close_at:
        closed.append(ids)
        return closed, None
    return closed, close_at
