"""The Jet API's transport: the shared exchange of :mod:`jetwatch.apis.exchange` with an
OAuth client-credentials token (``POST /oauth/token``)."""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from pydantic import SecretStr, ValidationError

from jetwatch.apis.exchange import ApiTransport, Call, Seams, TransportSettings
from jetwatch.apis.token import Token
from jetwatch.errors import ProtocolError
from jetwatch.metrics import TOKEN_REFRESHES

log = structlog.get_logger(__name__)

OAUTH_ROUTE = "/oauth/token"


class Transport(ApiTransport):
    """Sends Calls to Jet with a cached client-credentials token, pacing and retries."""

    log_prefix = "jet"
    api_name = "Jet"

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        settings: TransportSettings,
        seams: Seams,
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        super().__init__(base_url, settings, seams)

    def secrets(self) -> Iterable[SecretStr | None]:
        return (self._secret,)

    def credentials_refused(self, call: Call, status: int) -> str | None:
        # Only the token request goes without auth: a 400/401 there is the secret refused.
        if not call.auth and status in (400, 401):
            return f"credentials of client {self.client_id!r} refused ({status})"
        return None

    async def obtain_token(self) -> Token:
        call = Call(
            "POST",
            OAUTH_ROUTE,
            self.url("oauth", "token"),
            body={
                "client_id": self.client_id,
                "client_secret": self._secret.get_secret_value(),
                "grant_type": "client_credentials",
            },
            auth=False,
        )
        reply = await self.perform(call)
        try:
            token = Token.model_validate_json(reply.body)
        except ValidationError:
            # Not chained: the validation error quotes the answer, which may hold the token.
            raise ProtocolError(f"POST {OAUTH_ROUTE}: the answer is not a token") from None
        TOKEN_REFRESHES.inc()
        log.info("jet_token_refreshed", client_id=self.client_id, expires_in_s=token.expires_in)
        return token
