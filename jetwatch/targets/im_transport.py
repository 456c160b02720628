"""One authenticated, paced and retried exchange with Integration Manager, failures as Jet*Error.

Seed 003 documents ``POST /api/login`` with username and password, answering an access
token, a refresh token and ``expires_in`` (36000 s). Renewal (``margin_s`` before expiry)
first tries the refresh token at ``POST /api/login/refresh`` with ``{"refresh_token": ...}``
— an assumption: the seed names no refresh call; a 404/405 there turns refreshing off —
and falls back to a fresh login. A 401 on a call logs in again once, then is a
``JetAuthError``. Backoff, Retry-After and the at-most-once rule for non-idempotent POSTs
are the Jet client's pure decisions (``jetwatch.jet.retry``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from aiohttp import hdrs
from pydantic import SecretStr, ValidationError
from yarl import URL

from jetwatch.errors import (
    JetAuthError,
    JetError,
    JetForbiddenError,
    JetNotFoundError,
    JetOutcomeUnknownError,
    JetProtocolError,
    JetRejectedError,
    JetTransportError,
)
from jetwatch.jet.models import Token
from jetwatch.jet.retry import (
    FailureKind,
    RetryAction,
    TokenBucket,
    backoff_delay_s,
    decide_retry,
    parse_retry_after,
)
from jetwatch.jet.token import TokenCache
from jetwatch.jet.transport import BODY_LIMIT_CHARS, Call, Reply, Sleep, decode_json
from jetwatch.metrics import API_LATENCY, API_REQUESTS, TOKEN_REFRESHES
from jetwatch.targets.im_models import LoginAnswer

log = structlog.get_logger(__name__)

LOGIN_ROUTE = "/api/login"
REFRESH_ROUTE = "/api/login/refresh"  # assumed, see the module docstring
_REDACT_SCAN_BYTES = 65536


@dataclass(frozen=True, slots=True)
class ImTransportSettings:
    """Timeouts, retry budget, pacing and token margin of one client."""

    request_timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_retries: int = 5  # retries after the first attempt
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    rate_limit_per_s: float = 20.0  # 0 disables the client-side limit
    token_margin_s: float = 300.0


class _SendFailedError(Exception):
    """Internal: the transport failed; ``kind`` says whether the server may have seen it."""

    def __init__(self, kind: FailureKind) -> None:
        super().__init__(kind.value)
        self.kind = kind


class ImTransport:
    """Sends Calls over one aiohttp session with a renewed login, pacing and retries."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: SecretStr,
        settings: ImTransportSettings,
        *,
        session: aiohttp.ClientSession | None,
        sleep: Sleep,
        clock: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        base = URL(base_url.rstrip("/"))
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("base_url must be an http(s) URL with a host")
        self.base = base
        self.username = username
        self._password = password
        self._settings = settings
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout_s,
            connect=settings.connect_timeout_s,
            sock_connect=settings.connect_timeout_s,
            sock_read=settings.request_timeout_s,
        )
        rate_per_s = settings.rate_limit_per_s
        self._bucket = TokenBucket(rate_per_s) if rate_per_s > 0 else None
        self._sleep, self._clock, self._rand = sleep, clock, rand
        self._tokens = TokenCache(self._obtain_token, margin_s=settings.token_margin_s, clock=clock)
        self._refresh_token: SecretStr | None = None
        self._refresh_supported = True
        self._force_login = False

    def url(self, *segments: str) -> URL:
        """The URL of a path below the base, each segment percent-encoded (ids may hold /)."""
        path = "/".join(quote(segment, safe="") for segment in segments)
        return URL(f"{self.base}/{path}", encoded=True)

    def follow(self, current: URL, link: str, route: str) -> URL:
        """A ``next`` link resolved against its page; never one leaving the API origin."""
        target = current.join(URL(link))
        # The bearer token goes with every request: never follow a link to another origin.
        if target.origin() != self.base.origin():
            raise JetProtocolError(f"GET {route}: next link leaves the API origin")
        return target

    async def close(self) -> None:
        """Close the session if this transport created it; an injected one is left open."""
        self._closed = True
        self._tokens.clear()
        self._refresh_token = None
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def json(self, call: Call) -> Any:
        """Perform ``call`` and decode its JSON answer."""
        return decode_json(await self.perform(call), call.route)

    # ----- tokens -------------------------------------------------------------------------

    async def _obtain_token(self) -> Token:
        """Refresh with the refresh token when there is one, else (or if refused) log in."""
        answer: LoginAnswer | None = None
        refresh = self._refresh_token
        if refresh is not None and self._refresh_supported and not self._force_login:
            try:
                answer = await self._token_call(REFRESH_ROUTE, {"refresh_token": refresh})
            except JetRejectedError as exc:
                if exc.status in (404, 405):
                    self._refresh_supported = False
                log.info("im_token_refresh_refused", status=exc.status)
            else:
                log.info(
                    "im_token_refreshed", username=self.username, expires_in_s=answer.expires_in
                )
        self._force_login = False
        if answer is None:
            self._refresh_token = None
            credentials = {"username": SecretStr(self.username), "password": self._password}
            answer = await self._token_call(LOGIN_ROUTE, credentials)
            log.info("im_logged_in", username=self.username, expires_in_s=answer.expires_in)
        if answer.refresh_token is not None:  # a refresh may keep the old refresh token
            self._refresh_token = answer.refresh_token
        TOKEN_REFRESHES.inc()
        return Token(access_token=answer.access_token, expires_in=answer.expires_in)

    async def _token_call(self, route: str, fields: dict[str, SecretStr]) -> LoginAnswer:
        body = {key: value.get_secret_value() for key, value in fields.items()}
        url = self.url(*route.strip("/").split("/"))
        reply = await self.perform(Call("POST", route, url, body=body, auth=False))
        try:
            return LoginAnswer.model_validate_json(reply.body)
        except ValidationError:
            # Not chained: the validation error quotes the answer, which holds the tokens.
            raise JetProtocolError(f"POST {route}: the answer is not a token") from None

    # ----- one call -----------------------------------------------------------------------

    async def perform(self, call: Call) -> Reply:
        """Send ``call`` until it gets a 2xx answer, or raise the JetError its failure maps to."""
        attempt = 0
        auth_retried = False
        while True:
            token = await self._tokens.get() if call.auth else None
            await self._pace()
            try:
                reply = await self._exchange(call, token)
            except _SendFailedError as failure:
                delay_s = self._delay_after_failure(call, failure, attempt)
                reason = type(failure.__cause__).__name__
            else:
                if 200 <= reply.status < 300:
                    return reply
                if reply.status == 401 and token is not None and not auth_retried:
                    # The session died early (server restart, revoked): log in again, once.
                    auth_retried = True
                    log.info("im_token_rejected", method=call.method, route=call.route)
                    self._force_login = True
                    await self._tokens.replace_rejected(token)
                    continue
                delay_s = self._delay_after_status(call, reply, attempt)
                reason = str(reply.status)
            log.warning(
                "im_request_retry",
                method=call.method,
                route=call.route,
                reason=reason,
                attempt=attempt + 1,
                delay_s=round(delay_s, 3),
            )
            await self._sleep(delay_s)
            attempt += 1

    async def _pace(self) -> None:
        if self._bucket is None:
            return
        wait_s = self._bucket.reserve(self._clock())
        if wait_s > 0:
            await self._sleep(wait_s)

    async def _exchange(self, call: Call, token: SecretStr | None) -> Reply:
        """Send one HTTP request; transport failures become _SendFailedError with their kind."""
        headers = {hdrs.ACCEPT: "application/json"}
        if token is not None:
            headers[hdrs.AUTHORIZATION] = f"Bearer {token.get_secret_value()}"
        if self._closed:
            raise RuntimeError("the Integration Manager client is closed")
        if self._session is None:  # created lazily so it belongs to the running loop
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        status = "error"
        started = time.perf_counter()
        try:
            async with self._session.request(
                call.method,
                call.url,
                params=call.params,
                json=call.body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                status = str(response.status)
                return Reply(response.status, body, response.headers.get(hdrs.RETRY_AFTER))
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise _SendFailedError(FailureKind.NOT_SENT) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _SendFailedError(FailureKind.MAYBE_SENT) from exc
        finally:
            API_REQUESTS.labels(method=call.method, route=call.route, status=status).inc()
            elapsed_s = time.perf_counter() - started
            API_LATENCY.labels(method=call.method, route=call.route).observe(elapsed_s)

    def _backoff_s(self, attempt: int) -> float:
        s = self._settings
        return backoff_delay_s(attempt, s.backoff_base_s, s.backoff_max_s, self._rand())

    def _delay_after_failure(self, call: Call, failure: _SendFailedError, attempt: int) -> float:
        cause = failure.__cause__
        reason = type(cause).__name__
        action = decide_retry(idempotent=call.idempotent, failure=failure.kind)
        if action is RetryAction.OUTCOME_UNKNOWN:
            log.error("im_outcome_unknown", method=call.method, route=call.route, reason=reason)
            raise JetOutcomeUnknownError(
                f"{call.method} {call.route}: {reason}; the request may have been processed"
            ) from cause
        if attempt >= self._settings.max_retries:
            raise JetTransportError(
                f"{call.method} {call.route}: {reason} after {attempt + 1} attempts"
            ) from cause
        return self._backoff_s(attempt)

    def _delay_after_status(self, call: Call, reply: Reply, attempt: int) -> float:
        retry_after_s = parse_retry_after(reply.retry_after, datetime.now(UTC))
        action = decide_retry(
            idempotent=call.idempotent, status=reply.status, retry_after_s=retry_after_s
        )
        if action is RetryAction.FAIL:
            raise self._rejection(call, reply)
        message = f"{call.method} {call.route} answered {reply.status}"
        if action is RetryAction.OUTCOME_UNKNOWN:
            log.error(
                "im_outcome_unknown", method=call.method, route=call.route, status=reply.status
            )
            raise JetOutcomeUnknownError(f"{message}; the request may have been processed")
        # A Retry-After beyond our own longest backoff goes back to the caller with the value.
        too_long = retry_after_s is not None and retry_after_s > self._settings.backoff_max_s
        if attempt >= self._settings.max_retries or too_long:
            raise JetTransportError(
                f"{message} after {attempt + 1} attempts",
                status=reply.status,
                retry_after_s=retry_after_s,
            )
        return retry_after_s if retry_after_s is not None else self._backoff_s(attempt)

    def _rejection(self, call: Call, reply: Reply) -> JetError:
        status, body = reply.status, self.redact(reply.body)
        log.warning(
            "im_request_rejected", method=call.method, route=call.route, status=status, body=body
        )
        message = f"{call.method} {call.route} answered {status}"
        if call.route == LOGIN_ROUTE and status in (400, 401):
            refused = f"credentials of user {self.username!r} refused ({status})"
            return JetAuthError(refused, status=status, body=body)
        if status == 401:
            return JetAuthError(f"{message} even after a fresh login", status=status, body=body)
        if status == 403:
            return JetForbiddenError(message, status=status, body=body)
        if status == 404:
            return JetNotFoundError(message, status=status, body=body)
        if 400 <= status < 500:
            return JetRejectedError(message, status=status, body=body)
        return JetProtocolError(f"{message}, a status the API does not use")

    def redact(self, raw: bytes) -> str:
        """An error body fit for logs and exceptions: password and tokens masked, truncated."""
        text = raw[:_REDACT_SCAN_BYTES].decode("utf-8", errors="replace")
        for secret in (self._password, self._tokens.current(), self._refresh_token):
            value = secret.get_secret_value() if secret is not None else ""
            if value:
                text = text.replace(value, "***")
        return text[:BODY_LIMIT_CHARS]
