"""OAuth access-token cache with single-flight refresh, shared by every call of one client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, SecretStr

BEARER_SCHEME = "Bearer"


class Token(BaseModel):
    """The OAuth token answer (snake_case on the wire); the token itself is a SecretStr."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    access_token: SecretStr = Field(min_length=1)
    expires_in: float = 3600.0
    token_type: str = BEARER_SCHEME


def token_expiry(now: float, expires_in: float, margin: float) -> float:
    """When a token fetched at ``now`` should be replaced: ``expires_in`` less a safety margin.

    The margin is capped at half the lifetime so short-lived tokens (3 s in tests) are still
    used for a while instead of being refreshed on every call.
    """
    lifetime_s = max(0.0, expires_in)
    return now + lifetime_s - min(max(0.0, margin), lifetime_s / 2)


@dataclass(frozen=True, slots=True)
class CachedToken:
    """An access token and the monotonic time after which it is no longer used."""

    value: SecretStr = field(repr=False)
    refresh_at: float


class TokenCache:
    """Hands out a valid bearer token; concurrent callers share one refresh (an asyncio.Lock).

    ``fetch`` performs the token request; ``clock`` is monotonic seconds (injectable in tests).
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Token]],
        *,
        margin_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._fetch = fetch
        self._margin_s = margin_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current: CachedToken | None = None

    def _usable(self) -> CachedToken | None:
        current = self._current
        if current is not None and self._clock() < current.refresh_at:
            return current
        return None

    async def get(self) -> SecretStr:
        """A token that is not about to expire, fetched only if the cached one is too old."""
        cached = self._usable()
        if cached is not None:
            return cached.value
        async with self._lock:
            # Re-check under the lock: whoever held it before us may have just refreshed.
            cached = self._usable()
            if cached is not None:
                return cached.value
            return await self._refresh()

    async def replace_rejected(self, rejected: SecretStr) -> SecretStr:
        """A token other than ``rejected`` (the server said 401 to it), refreshing at most once.

        If a concurrent caller already replaced the rejected token, its result is reused, so a
        burst of 401s costs one token request.
        """
        async with self._lock:
            cached = self._usable()
            if cached is not None and cached.value.get_secret_value() != (
                rejected.get_secret_value()
            ):
                return cached.value
            return await self._refresh()

    def current(self) -> SecretStr | None:
        """The cached token, valid or not (for redaction), None when there is none."""
        return self._current.value if self._current is not None else None

    def clear(self) -> None:
        """Forget the cached token (on close)."""
        self._current = None

    async def _refresh(self) -> SecretStr:
        self._current = None
        # The lifetime counts from when the server issued the token, which is no earlier
        # than when we asked for it: timing from the request start errs on the safe side.
        requested_at = self._clock()
        token = await self._fetch()
        self._current = CachedToken(
            value=token.access_token,
            refresh_at=token_expiry(requested_at, token.expires_in, self._margin_s),
        )
        return token.access_token
