"""Tests of the pure pacing decisions: backoff, Retry-After, retry rules, token expiry, bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from jetwatch.jet.retry import (
    FailureKind,
    RetryAction,
    TokenBucket,
    backoff_delay_s,
    decide_retry,
    parse_retry_after,
)
from jetwatch.jet.token import token_expiry

NOW = datetime(2025, 9, 15, 18, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempt", "rand", "expected_s"),
    [
        (0, 0.5, 0.25),
        (1, 0.5, 0.5),
        (3, 1.0, 4.0),
        (10, 1.0, 30.0),
        (10_000, 0.5, 15.0),
        (2, 0.0, 0.0),
    ],
)
def test_backoff_is_full_jitter_under_a_capped_exponential(
    attempt: int, rand: float, expected_s: float
) -> None:
    """The delay is rand times min(max, base * 2**attempt), even for huge attempt numbers."""
    assert backoff_delay_s(attempt, 0.5, 30.0, rand) == pytest.approx(expected_s)


def test_backoff_clamps_a_rand_outside_the_unit_interval() -> None:
    """A bad random value never yields a negative or over-cap delay."""
    assert backoff_delay_s(2, 1.0, 30.0, -3.0) == 0.0
    assert backoff_delay_s(2, 1.0, 30.0, 7.0) == 4.0


@pytest.mark.parametrize(
    ("value", "expected_s"),
    [
        ("2", 2.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("-1", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected_s: float | None) -> None:
    """Delta-seconds are parsed; negative, non-finite and garbage values are ignored."""
    assert parse_retry_after(value, NOW) == expected_s


def test_retry_after_http_date_in_the_future() -> None:
    """An HTTP-date counts the seconds from now until then."""
    value = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(value, NOW) == pytest.approx(42.0)


def test_retry_after_http_date_in_the_past_means_now() -> None:
    """A date that has passed means retry at once, not a negative wait."""
    value = format_datetime(NOW - timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(value, NOW) == 0.0


def test_retry_after_date_with_a_naive_now() -> None:
    """A naive ``now`` is taken as UTC."""
    value = "Mon, 15 Sep 2025 18:00:10 GMT"
    assert parse_retry_after(value, NOW.replace(tzinfo=None)) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("idempotent", "status", "failure", "retry_after_s", "expected"),
    [
        (True, None, FailureKind.NOT_SENT, None, RetryAction.RETRY),
        (True, None, FailureKind.MAYBE_SENT, None, RetryAction.RETRY),
        (False, None, FailureKind.NOT_SENT, None, RetryAction.RETRY),
        (False, None, FailureKind.MAYBE_SENT, None, RetryAction.OUTCOME_UNKNOWN),
        (True, 429, None, None, RetryAction.RETRY),
        (False, 429, None, None, RetryAction.RETRY),
        (True, 503, None, None, RetryAction.RETRY),
        (False, 503, None, 1.0, RetryAction.RETRY),
        (False, 503, None, None, RetryAction.OUTCOME_UNKNOWN),
        (True, 500, None, None, RetryAction.RETRY),
        (False, 500, None, None, RetryAction.OUTCOME_UNKNOWN),
        (False, 502, None, 3.0, RetryAction.OUTCOME_UNKNOWN),
        (True, 400, None, None, RetryAction.FAIL),
        (False, 404, None, None, RetryAction.FAIL),
        (True, None, None, None, RetryAction.FAIL),
    ],
)
def test_decide_retry_table(
    idempotent: bool,
    status: int | None,
    failure: FailureKind | None,
    retry_after_s: float | None,
    expected: RetryAction,
) -> None:
    """Only requests the server provably did not act on are re-sent when not idempotent."""
    action = decide_retry(
        idempotent=idempotent, status=status, failure=failure, retry_after_s=retry_after_s
    )
    assert action is expected


@pytest.mark.parametrize(
    ("expires_in", "margin", "expected"),
    [
        (3600.0, 60.0, 100.0 + 3540.0),
        (3.0, 60.0, 101.5),
        (120.0, 0.0, 220.0),
        (0.0, 60.0, 100.0),
    ],
)
def test_token_expiry_caps_the_margin_at_half_the_lifetime(
    expires_in: float, margin: float, expected: float
) -> None:
    """Long tokens refresh a margin early; a 3-second token is still used for 1.5 s."""
    assert token_expiry(100.0, expires_in, margin) == pytest.approx(expected)


def test_token_bucket_allows_a_burst_then_paces() -> None:
    """A full bucket serves ``burst`` requests at once, then one per 1/rate seconds."""
    bucket = TokenBucket(2.0, burst=2.0)
    assert [bucket.reserve(0.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.reserve(0.0) == pytest.approx(0.5)
    assert bucket.reserve(0.0) == pytest.approx(1.0)


def test_token_bucket_refills_with_time() -> None:
    """After idling the bucket is full again, but never above its burst."""
    bucket = TokenBucket(1.0)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == pytest.approx(1.0)
    assert bucket.reserve(100.0) == 0.0
    assert bucket.reserve(100.0) == pytest.approx(1.0)


def test_token_bucket_rejects_a_zero_rate() -> None:
    """A zero rate is "disabled", which the client handles by not building a bucket."""
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0.0)
