"""The one backoff (full and equal jitter), Retry-After parsing and the token bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from jetwatch.domain.backoff import Backoff, Jitter, TokenBucket, parse_retry_after

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
    assert Backoff(0.5, 30.0).delay_s(attempt, rand) == pytest.approx(expected_s)


def test_backoff_clamps_a_rand_outside_the_unit_interval() -> None:
    """A bad random value never yields a negative or over-cap delay."""
    assert Backoff(1.0, 30.0).delay_s(2, -3.0) == 0.0
    assert Backoff(1.0, 30.0).delay_s(2, 7.0) == 4.0


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (10, 15.0, 30.0)]
)
def test_backoff_doubles_with_equal_jitter_and_caps(attempt: int, low: float, high: float) -> None:
    """The delay lies between half and all of base·2^(attempt-1), capped at max_s."""
    assert Backoff(1.0, 30.0, Jitter.EQUAL).delay_s(attempt - 1, 0.0) == low
    assert Backoff(1.0, 30.0, Jitter.EQUAL).delay_s(attempt - 1, 1.0) == high


def test_backoff_zero_base_means_no_wait() -> None:
    """retry_backoff_seconds = 0 retries at once, whatever the attempt."""
    assert Backoff(0.0, 300.0, Jitter.EQUAL).delay_s(6, 0.5) == 0.0


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
