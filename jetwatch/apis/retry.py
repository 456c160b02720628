"""Pure retry rules of an API call: may a failed attempt be sent again, and what it means if not.

The delays themselves come from :class:`jetwatch.domain.backoff.Backoff`.
"""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    """How far a request got before the transport failed."""

    NOT_SENT = "not_sent"  # connect refused / connect timeout: the server never saw it
    MAYBE_SENT = "maybe_sent"  # read timeout, disconnect, reset: it may have been processed


class RetryAction(StrEnum):
    """What to do about one failed attempt."""

    RETRY = "retry"
    OUTCOME_UNKNOWN = "outcome_unknown"
    FAIL = "fail"


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
