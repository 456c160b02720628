"""OAuth clients, bearer tokens with a lifetime, and what each role may call."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from jetwatch.emulators.jet.config import ClientSpec, Role


@dataclass(frozen=True, slots=True)
class Grant:
    """A token the emulator issued: who holds it, with which role, until when (monotonic)."""

    client_id: str
    role: Role
    expires_at_s: float


class TokenProblem(StrEnum):
    """Why a bearer token was refused (all answered 401)."""

    MISSING = "missing bearer token"
    UNKNOWN = "invalid token"
    EXPIRED = "token expired"


class TokenRefused(Exception):
    """The request's token cannot be used; ``problem`` says why."""

    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class TokenStore:
    """Checks client credentials, issues opaque tokens and validates them until they expire."""

    def __init__(
        self,
        clients: Iterable[ClientSpec],
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = {c.client_id: c for c in clients}
        self.ttl_s = ttl_s
        self._clock = clock
        self._grants: dict[str, Grant] = {}

    def issue(self, client_id: str, client_secret: str) -> str | None:
        """A new token for good credentials, None for bad ones."""
        client = self._clients.get(client_id)
        # compare_digest even for unknown ids, so timing does not tell which ids exist.
        expected = client.client_secret if client else secrets.token_hex(16)
        if not hmac.compare_digest(expected.encode(), client_secret.encode()) or client is None:
            return None
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._grants[token] = Grant(client.client_id, client.role, self._clock() + self.ttl_s)
        return token

    def check(self, authorization: str | None) -> Grant:
        """The grant behind an ``Authorization: Bearer`` header; raise TokenRefused otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRefused(TokenProblem.MISSING)
        grant = self._grants.get(token.strip())
        if grant is None:
            raise TokenRefused(TokenProblem.UNKNOWN)
        if self._clock() >= grant.expires_at_s:
            raise TokenRefused(TokenProblem.EXPIRED)
        return grant

    def _forget_expired(self) -> None:
        # Expired grants are kept until the next issue so a late caller hears "expired".
        now_s = self._clock()
        for token in [t for t, g in self._grants.items() if g.expires_at_s <= now_s - self.ttl_s]:
            del self._grants[token]


def is_allowed(role: Role, method: str, path: str) -> bool:
    """Seed 000: JET_VIEW_ONLY may only read the jobs endpoints; S2S_ADMIN may do anything."""
    if role is Role.S2S_ADMIN:
        return True
    reads_jobs = path == "/v1/jobs" or path.startswith("/v1/jobs/")
    return method in ("GET", "HEAD") and reads_jobs
