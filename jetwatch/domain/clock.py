"""The one clock, injected: monotonic seconds for durations, wall time for people and records.

Every wait (settle, linger, max_wait, backoff, poll intervals, retry times) runs on
``monotonic``; the wall clock may step (NTP, an operator, a VM resume) and only dates what
people read and what the ledger records. Ledger times that schedule something survive a
restart, so they are wall times: :func:`wall_due_in_s` reads them robustly.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What components read the time from; tests pass a fake and never sleep."""

    def wall(self) -> float:
        """Epoch seconds: what the ledger records as dates and what people read."""
        ...

    def monotonic(self) -> float:
        """Seconds that only go forward: settle, linger, backoff, poll intervals."""
        ...


class SystemClock:
    """The real clocks."""

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()

# No time the ledger schedules (a retry's not_before) lies further ahead than this when it is
# written; one that does was written before the wall clock stepped back, and is due now.
MAX_AHEAD_S = 900.0


def wall_due_in_s(due_wall: float, now_wall: float) -> float:
    """Seconds until a wall-clock time the ledger recorded, robust to the clock stepping:
    0 when it has passed, and 0 when it is implausibly far ahead (the clock went back)."""
    ahead_s = due_wall - now_wall
    return ahead_s if 0.0 < ahead_s <= MAX_AHEAD_S else 0.0
