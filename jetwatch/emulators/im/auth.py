"""Users, access tokens with a lifetime, and single-use refresh tokens of the IM emulator."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from jetwatch.emulators.im.config import UserSpec
from jetwatch.emulators.jet.auth import TokenProblem, TokenRefused


@dataclass(frozen=True, slots=True)
class User:
    """A user as the API shows it: ``{"id", "name", "href"}``."""

    user_id: str
    username: str


@dataclass(frozen=True, slots=True)
class TokenPair:
    """The answer of a login or a refresh."""

    access_token: str
    refresh_token: str
    expires_in: float


@dataclass(frozen=True, slots=True)
class _Grant:
    user: User
    expires_at_s: float


class SessionStore:
    """Checks passwords, issues token pairs, refreshes them (rotating) and validates tokens."""

    def __init__(
        self,
        users: Iterable[UserSpec],
        ttl_s: float,
        refresh_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        specs = list(users)
        self._passwords = {u.username: u.password for u in specs}
        self.users = {u.username: User(str(i), u.username) for i, u in enumerate(specs, start=1)}
        self.ttl_s = ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self._clock = clock
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}

    def login(self, username: str, password: str) -> TokenPair | None:
        """A new pair for a good password, None otherwise."""
        # compare_digest even for unknown users, so timing does not tell which names exist.
        expected = self._passwords.get(username, secrets.token_hex(16))
        if not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        user = self.users.get(username)
        return None if user is None else self._issue(user)

    def refresh(self, refresh_token: str) -> TokenPair | None:
        """A new pair for a live refresh token, which is used up; None otherwise."""
        grant = self._refresh.pop(refresh_token, None)
        if grant is None or self._clock() >= grant.expires_at_s:
            return None
        return self._issue(grant.user)

    def check(self, authorization: str | None) -> User:
        """The user behind an ``Authorization: Bearer`` header; raise TokenRefused otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRefused(TokenProblem.MISSING)
        grant = self._access.get(token.strip())
        if grant is None:
            raise TokenRefused(TokenProblem.UNKNOWN)
        if self._clock() >= grant.expires_at_s:
            raise TokenRefused(TokenProblem.EXPIRED)
        return grant.user

    def expire_all(self, *, refresh_too: bool = False) -> int:
        """Make every access token (and optionally refresh token) expired now; how many."""
        now_s = self._clock()
        stores = [self._access, self._refresh] if refresh_too else [self._access]
        count = 0
        for store in stores:
            for token, grant in store.items():
                store[token] = _Grant(grant.user, min(grant.expires_at_s, now_s))
                count += 1
        return count

    def _issue(self, user: User) -> TokenPair:
        now_s = self._clock()
        self._forget_expired(now_s)
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._access[access] = _Grant(user, now_s + self.ttl_s)
        self._refresh[refresh] = _Grant(user, now_s + self.refresh_ttl_s)
        return TokenPair(access, refresh, self.ttl_s)

    def _forget_expired(self, now_s: float) -> None:
        # Expired tokens are kept one lifetime longer so a late caller hears "expired".
        for store, ttl_s in ((self._access, self.ttl_s), (self._refresh, self.refresh_ttl_s)):
            for token in [t for t, g in store.items() if g.expires_at_s <= now_s - ttl_s]:
                del store[token]
