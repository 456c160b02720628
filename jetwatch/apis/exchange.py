"""One authenticated, paced and retried HTTP exchange with a JSON API, failures as ApiError.

Shared by the Jet client (OAuth client credentials) and the Integration Manager client
(username/password login): a subclass only says how to obtain a token, which refusals
mean "credentials refused", and which secrets to mask. The retry rules are the pure
decisions of :mod:`jetwatch.apis.retry` and :mod:`jetwatch.domain.backoff`: backoff
with full jitter, Retry-After honoured, and a non-idempotent call (a delivery or job-run
POST) re-sent only when the server provably did not act on it; otherwise
:class:`OutcomeUnknownError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp
import structlog
from aiohttp import hdrs
from pydantic import SecretStr
from yarl import URL

from jetwatch.apis.calls import (
    Call,
    ClientOptions,
    Reply,
    Seams,
    Sleep,
    TransportSettings,
    client_parts,
)
from jetwatch.apis.network import Network, failure_text, network_for
from jetwatch.apis.retry import FailureKind, RetryAction, decide_retry
from jetwatch.apis.token import Token, TokenCache
from jetwatch.domain.backoff import Backoff, TokenBucket, parse_retry_after
from jetwatch.errors import (
    ApiError,
    AuthError,
    ForbiddenError,
    NotFoundError,
    OutcomeUnknownError,
    ProtocolError,
    RejectedError,
    TransportError,
)
from jetwatch.metrics import API_LATENCY, API_REQUESTS

log = structlog.get_logger(__name__)

__all__ = [
    "ApiClient",
    "ApiTransport",
    "Call",
    "ClientOptions",
    "Reply",
    "Seams",
    "Sleep",
    "TransportSettings",
    "client_parts",
    "decode_json",
]

BODY_LIMIT_CHARS = 500
_REDACT_SCAN_BYTES = 65536


class _SendFailedError(Exception):
    """Internal: the transport failed; ``kind`` says whether the server may have seen it."""

    def __init__(self, kind: FailureKind) -> None:
        super().__init__(kind.value)
        self.kind = kind


class ApiTransport:
    """Sends Calls over one aiohttp session with a cached token, pacing and retries.

    Subclasses implement :meth:`obtain_token` and may override the hooks below. ``sleep``,
    ``clock`` (monotonic seconds) and ``rand`` (uniform [0, 1)) are the seams tests use so
    that no test waits for a backoff.
    """

    log_prefix = "api"  # jet_request_retry, im_outcome_unknown, ...
    api_name = "API"
    renewal = "a fresh token"  # what a 401 was refused after, in its message

    def __init__(self, base_url: str, settings: TransportSettings, seams: Seams) -> None:
        base = URL(base_url.rstrip("/"))
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("base_url must be an http(s) URL with a host")
        self.base = base
        self._settings = settings
        # ValueError for a CA file that cannot be loaded (the caller names the config key).
        self.network: Network = network_for(base, settings.proxy, settings.ca_file)
        self._host = f"{base.host}:{base.port}"
        self._session = seams.session
        self._owns_session = seams.session is None
        self._closed = False
        self._timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout_s,
            connect=settings.connect_timeout_s,
            sock_connect=settings.connect_timeout_s,
            sock_read=settings.request_timeout_s,
        )
        rate_per_s = settings.rate_limit_per_s
        self._bucket = TokenBucket(rate_per_s) if rate_per_s > 0 else None
        self._sleep, self._clock, self._rand = seams.sleep, seams.clock, seams.rand
        self._tokens = TokenCache(
            self.obtain_token, margin_s=settings.token_margin_s, clock=seams.clock
        )

    # ----- hooks --------------------------------------------------------------------------

    async def obtain_token(self) -> Token:
        """A new access token (called single-flight by the token cache)."""
        raise NotImplementedError

    def token_rejected(self) -> None:
        """A call's token was refused (401) before its expiry: the next token is fetched anew."""

    def credentials_refused(self, call: Call, status: int) -> str | None:
        """The message when this refusal means the credentials themselves were refused."""
        return None

    def secrets(self) -> Iterable[SecretStr | None]:
        """Values masked in error bodies; the current access token is always masked."""
        return ()

    # ----- the public surface -------------------------------------------------------------

    def url(self, *segments: str) -> URL:
        """The URL of a path below the base, each segment percent-encoded (ids may hold /)."""
        path = "/".join(quote(segment, safe="") for segment in segments)
        return URL(f"{self.base}/{path}", encoded=True)

    def follow(self, current: URL, link: str, route: str) -> URL:
        """A ``next`` link resolved against its page; never one leaving the API origin."""
        target = current.join(URL(link))
        # The bearer token goes with every request: never follow a link to another origin.
        if target.origin() != self.base.origin():
            raise ProtocolError(f"GET {route}: next link leaves the API origin")
        return target

    async def close(self) -> None:
        """Close the session if this transport created it; an injected one is left open."""
        self._closed = True
        self._tokens.clear()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def json(self, call: Call) -> Any:
        """Perform ``call`` and decode its JSON answer."""
        return decode_json(await self.perform(call), call.route)

    async def perform(self, call: Call) -> Reply:
        """Send ``call`` until it gets a 2xx answer, or raise the ApiError its failure maps to."""
        attempt = 0
        auth_retried = False
        while True:
            token = await self._tokens.get() if call.auth else None
            await self._pace()
            try:
                reply = await self._exchange(call, token)
            except _SendFailedError as failure:
                delay_s = self._delay_after_failure(call, failure, attempt)
                reason = failure_text(failure.__cause__, self.network, self._host)
            else:
                if 200 <= reply.status < 300:
                    return reply
                if reply.status == 401 and token is not None and not auth_retried:
                    # The token died earlier than we thought: replace it once, send once more.
                    auth_retried = True
                    log.info(self._event("token_rejected"), method=call.method, route=call.route)
                    self.token_rejected()
                    await self._tokens.replace_rejected(token)
                    continue
                delay_s = self._delay_after_status(call, reply, attempt)
                reason = str(reply.status)
            log.warning(
                self._event("request_retry"),
                method=call.method,
                route=call.route,
                reason=reason,
                attempt=attempt + 1,
                delay_s=round(delay_s, 3),
            )
            await self._sleep(delay_s)
            attempt += 1

    def redact(self, raw: bytes) -> str:
        """An error body fit for logs and exceptions: secrets and tokens masked, truncated."""
        text = raw[:_REDACT_SCAN_BYTES].decode("utf-8", errors="replace")
        for secret in (*self.secrets(), self._tokens.current()):
            value = secret.get_secret_value() if secret is not None else ""
            if value:
                text = text.replace(value, "***")
        return text[:BODY_LIMIT_CHARS]

    # ----- one attempt and what its failure means -----------------------------------------

    def _event(self, what: str) -> str:
        return f"{self.log_prefix}_{what}"

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
            raise RuntimeError(f"the {self.api_name} client is closed")
        if self._session is None:  # created lazily so it belongs to the running loop
            # trust_env off: the proxy was chosen once (network.py), NO_PROXY included.
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=False)
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
                proxy=self.network.proxy,
                ssl=self.network.tls if self.network.tls is not None else True,
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
        return Backoff(s.backoff_base_s, s.backoff_max_s).delay_s(attempt, self._rand())

    def _delay_after_failure(self, call: Call, failure: _SendFailedError, attempt: int) -> float:
        cause = failure.__cause__
        reason = failure_text(cause, self.network, self._host)
        action = decide_retry(idempotent=call.idempotent, failure=failure.kind)
        if action is RetryAction.OUTCOME_UNKNOWN:
            log.error(
                self._event("outcome_unknown"), method=call.method, route=call.route, reason=reason
            )
            raise OutcomeUnknownError(
                f"{call.method} {call.route}: {reason}; the request may have been processed"
            ) from cause
        if attempt >= self._settings.max_retries:
            raise TransportError(
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
        fields = {"method": call.method, "route": call.route, "status": reply.status}
        if action is RetryAction.OUTCOME_UNKNOWN:
            log.error(self._event("outcome_unknown"), body=self.redact(reply.body), **fields)
            raise OutcomeUnknownError(f"{message}; the request may have been processed")
        # A Retry-After beyond our own longest backoff goes back to the caller (with the
        # value) rather than parking this call for minutes.
        too_long = retry_after_s is not None and retry_after_s > self._settings.backoff_max_s
        if attempt >= self._settings.max_retries or too_long:
            log.warning(self._event("request_failed"), body=self.redact(reply.body), **fields)
            raise TransportError(
                f"{message} after {attempt + 1} attempts",
                status=reply.status,
                retry_after_s=retry_after_s,
            )
        return retry_after_s if retry_after_s is not None else self._backoff_s(attempt)

    def _rejection(self, call: Call, reply: Reply) -> ApiError:
        status, body = reply.status, self.redact(reply.body)
        log.warning(
            self._event("request_rejected"),
            method=call.method,
            route=call.route,
            status=status,
            body=body,
        )
        message = f"{call.method} {call.route} answered {status}"
        refused = self.credentials_refused(call, status)
        if refused is not None:
            return AuthError(refused, status=status, body=body)
        if status == 401:
            return AuthError(f"{message} even after {self.renewal}", status=status, body=body)
        if status == 403:
            return ForbiddenError(message, status=status, body=body)
        if status == 404:
            return NotFoundError(message, status=status, body=body)
        if 400 <= status < 500:
            return RejectedError(message, status=status, body=body)
        return ProtocolError(f"{message}, a status the API does not use")


class ApiClient:
    """Base of the API clients: one transport, closed by ``close`` or ``async with``."""

    _transport: ApiTransport

    @property
    def network(self) -> Network:
        """The proxy and CAs this client uses (``check --online`` says them)."""
        return self._transport.network

    @property
    def base_url(self) -> str:
        return str(self._transport.base)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it; an injected one is left open."""
        await self._transport.close()


def decode_json(reply: Reply, route: str) -> Any:
    """The JSON document of a reply; ProtocolError when it is not JSON."""
    try:
        return json.loads(reply.body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise ProtocolError(f"{route}: the answer is not JSON") from exc
