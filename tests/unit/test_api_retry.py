"""The pure retry rules of an API call, and when a token is replaced."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jetwatch.apis.retry import FailureKind, RetryAction, decide_retry
from jetwatch.apis.token import token_expiry

NOW = datetime(2025, 9, 15, 18, 0, 0, tzinfo=UTC)


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
