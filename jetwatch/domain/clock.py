"""The one clock, injected: monotonic seconds for durations, wall time for people and records."""

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
