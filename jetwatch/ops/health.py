"""Health values: the readiness verdict and an event-loop lag monitor behind ``/healthz``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from jetwatch import metrics

__all__ = ["LoopMonitor", "Readiness"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the daemon can take work now, why not, and details to show either way."""

    ready: bool
    reasons: tuple[str, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict)


class LoopMonitor:
    """Measures how late the event loop wakes a sleeper: a wedged loop shows as lag."""

    def __init__(self, interval_s: float = 0.5) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s!r}")
        self.interval_s = interval_s
        self._last_lag_s = 0.0
        # Monotonic time the current measurement should wake at (the loop's clock too).
        self._due: float | None = None

    @property
    def lag_s(self) -> float:
        """The last measured lag, or the overdue time of the measurement in progress if larger."""
        if self._due is None:
            return self._last_lag_s
        return max(self._last_lag_s, time.monotonic() - self._due)

    def is_healthy(self, max_lag_s: float) -> bool:
        """True while the loop lag stays below ``max_lag_s``."""
        return self.lag_s < max_lag_s

    async def run_once(self) -> float:
        """Sleep one interval, record how late the wake-up came, and return that lag."""
        due = self._due = time.monotonic() + self.interval_s
        try:
            await asyncio.sleep(self.interval_s)
            lag_s = max(0.0, time.monotonic() - due)
        finally:
            self._due = None
        self._last_lag_s = lag_s
        metrics.LOOP_LAG_SECONDS.set(lag_s)
        return lag_s

    async def run(self) -> None:
        """Measure until cancelled."""
        log.debug("loop_monitor_started", interval_s=self.interval_s)
        while True:
            lag_s = await self.run_once()
            if lag_s > max(1.0, 4 * self.interval_s):
                # Something blocked the loop: a sync call or a huge CPU burst in a coroutine.
                log.warning("event_loop_lagging", lag_s=round(lag_s, 3))
