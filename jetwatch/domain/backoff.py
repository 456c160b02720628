"""The one backoff of jetwatch, Retry-After parsing and a client-side token bucket; all pure.

Every wait that grows after failures (API retries, in-doubt rounds, target checks, a folder
that is down, batch retries) is a :class:`Backoff`: ``base_s * 2**retries`` capped at
``max_s``, with the jitter its caller needs. Callers pass the random number and ``now``, so
tests choose them and never sleep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

# 2**60 times any sane base already exceeds every max; the cap keeps the float finite.
_MAX_EXPONENT = 60


class Jitter(StrEnum):
    """How much of the capped exponential a delay may shave off."""

    FULL = "full"  # uniform in [0, ceiling): many clients retrying spread out the most
    EQUAL = "equal"  # uniform in [ceiling / 2, ceiling]: never much sooner than planned
    NONE = "none"  # exactly the ceiling


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``base_s * 2**retries`` capped at ``max_s``, then jittered."""

    base_s: float
    max_s: float
    jitter: Jitter = Jitter.FULL

    def ceiling_s(self, retries: int) -> float:
        """The delay before jitter after ``retries`` failures (0 = the first failure)."""
        exponent = min(max(retries, 0), _MAX_EXPONENT)
        return max(0.0, min(self.max_s, self.base_s * 2.0**exponent))

    def delay_s(self, retries: int, rand: float = 1.0) -> float:
        """The delay after ``retries`` failures; ``rand`` in [0, 1] (clamped) picks the jitter."""
        ceiling_s = self.ceiling_s(retries)
        pick = max(0.0, min(1.0, rand))
        if self.jitter is Jitter.FULL:
            return pick * ceiling_s
        if self.jitter is Jitter.EQUAL:
            return ceiling_s / 2 + ceiling_s / 2 * pick
        return ceiling_s


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), None if unusable.

    A date in the past means "now" (0.0); negative, non-finite or garbage values are None so
    the caller falls back to its own backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _retry_after_date(text, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _retry_after_date(text: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class TokenBucket:
    """Client-side rate limit: ``rate_per_s`` requests a second with bursts up to ``burst``.

    ``reserve`` is a pure bookkeeping step given ``now``: it books one request and returns how
    long the caller must wait before sending it (0.0 when a token is available). Bookings may
    drive the level negative, so concurrent callers queue up fairly without a loop.
    """

    __slots__ = ("_burst", "_level", "_rate_per_s", "_updated")

    def __init__(self, rate_per_s: float, burst: float | None = None) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self._rate_per_s = rate_per_s
        self._burst = burst if burst is not None else max(1.0, rate_per_s)
        self._level = self._burst
        self._updated: float | None = None

    def reserve(self, now: float) -> float:
        """Book one request at ``now``; return the seconds to wait before sending it."""
        if self._updated is not None:
            elapsed_s = max(0.0, now - self._updated)
            self._level = min(self._burst, self._level + elapsed_s * self._rate_per_s)
        self._updated = now
        self._level -= 1.0
        if self._level >= 0:
            return 0.0
        return -self._level / self._rate_per_s
