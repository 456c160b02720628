"""Pure pacing decisions for Jet API calls: backoff, Retry-After, retry rules and a token bucket."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

# 2**60 times any sane base already exceeds every max; the cap keeps the float finite.
_MAX_EXPONENT = 60


class FailureKind(StrEnum):
    """How far a request got before the transport failed."""

    NOT_SENT = "not_sent"  # connect refused / connect timeout: the server never saw it
    MAYBE_SENT = "maybe_sent"  # read timeout, disconnect, reset: it may have been processed


class RetryAction(StrEnum):
    """What to do about one failed attempt."""

    RETRY = "retry"
    OUTCOME_UNKNOWN = "outcome_unknown"
    FAIL = "fail"


def backoff_delay_s(attempt: int, base_s: float, max_s: float, rand: float) -> float:
    """Full-jitter exponential backoff: a uniform pick in [0, min(max_s, base_s * 2**attempt)).

    ``attempt`` counts from 0; ``rand`` is a number in [0, 1) supplied by the caller, so the
    function stays pure and tests choose the jitter.
    """
    ceiling_s = min(max_s, base_s * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    return max(0.0, min(1.0, rand)) * max(0.0, ceiling_s)


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


def decide_retry(
    *,
    idempotent: bool,
    status: int | None = None,
    failure: FailureKind | None = None,
    retry_after_s: float | None = None,
) -> RetryAction:
    """Decide whether one failed attempt (an HTTP status or a transport failure) may be retried.

    A non-idempotent request (the delivery POST) is retried only when the server provably did
    not act on it: the connection never opened, 429 (rate limiter said no), or 503 with a
    Retry-After (overloaded, come back later). Anything that may have been processed (read
    timeout, disconnect after sending, 5xx other than such a 503) is OUTCOME_UNKNOWN: the
    caller must look for the delivery on the job instead of sending it twice.
    """
    if failure is not None:
        if failure is FailureKind.NOT_SENT or idempotent:
            return RetryAction.RETRY
        return RetryAction.OUTCOME_UNKNOWN
    if status is None:
        return RetryAction.FAIL
    if status == 429:
        return RetryAction.RETRY
    if status == 503 and retry_after_s is not None:
        return RetryAction.RETRY
    if status >= 500:
        return RetryAction.RETRY if idempotent else RetryAction.OUTCOME_UNKNOWN
    return RetryAction.FAIL


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
