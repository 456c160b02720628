"""One authenticated, paced and retried exchange with Integration Manager, failures as ApiError.

Seed 003 documents ``POST /api/login`` with username and password, answering an access
token, a refresh token and ``expires_in`` (36000 s). Renewal (``margin_s`` before expiry)
first tries the refresh token at ``POST /api/login/refresh`` with ``{"refresh_token": ...}``
— an assumption: the seed names no refresh call; a 404/405 there turns refreshing off —
and falls back to a fresh login. A 401 on a call logs in again once, then is a
``AuthError``. The exchange itself (backoff, Retry-After, the at-most-once rule for
non-idempotent POSTs, error mapping) is the shared :mod:`jetwatch.apis.exchange`.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from pydantic import SecretStr, ValidationError

from jetwatch.apis.exchange import ApiTransport, Call, Seams, TransportSettings
from jetwatch.apis.im.models import LoginAnswer
from jetwatch.apis.token import Token
from jetwatch.errors import ProtocolError, RejectedError
from jetwatch.metrics import TOKEN_REFRESHES

log = structlog.get_logger(__name__)

LOGIN_ROUTE = "/api/login"
REFRESH_ROUTE = "/api/login/refresh"  # assumed, see the module docstring


class ImTransport(ApiTransport):
    """Sends Calls to Integration Manager with a renewed login, pacing and retries."""

    log_prefix = "im"
    api_name = "Integration Manager"
    renewal = "a fresh login"

    def __init__(
        self,
        base_url: str,
        username: str,
        password: SecretStr,
        settings: TransportSettings,
        seams: Seams,
    ) -> None:
        self.username = username
        self._password = password
        self._refresh_token: SecretStr | None = None
        self._refresh_supported = True
        self._force_login = False
        super().__init__(base_url, settings, seams)

    async def close(self) -> None:
        self._refresh_token = None
        await super().close()

    def secrets(self) -> Iterable[SecretStr | None]:
        return (self._password, self._refresh_token)

    def token_rejected(self) -> None:
        # The session died early (server restart, revoked): log in again, not refresh.
        self._force_login = True

    def credentials_refused(self, call: Call, status: int) -> str | None:
        if call.route == LOGIN_ROUTE and status in (400, 401):
            return f"credentials of user {self.username!r} refused ({status})"
        return None

    async def obtain_token(self) -> Token:
        """Refresh with the refresh token when there is one, else (or if refused) log in."""
        answer: LoginAnswer | None = None
        refresh = self._refresh_token
        if refresh is not None and self._refresh_supported and not self._force_login:
            try:
                answer = await self._token_call(REFRESH_ROUTE, {"refresh_token": refresh})
            except RejectedError as exc:
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
            raise ProtocolError(f"POST {route}: the answer is not a token") from None
