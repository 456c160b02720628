"""One JSON POST to an incoming webhook (Slack, Teams, anything that takes JSON); no retries.

The URL is a secret: Slack and Teams put the credential in its path. Nothing raised here
names more of it than scheme, host and port. Errors are the usual tree: ``TransportError``
(connect, timeout, 429, 5xx: worth retrying, with ``retry_after_s``) or ``RejectedError``
(any other answer outside 2xx, a redirect included: retrying will not help).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from aiohttp import hdrs
from pydantic import SecretStr

from jetwatch.domain.backoff import parse_retry_after
from jetwatch.errors import RejectedError, TransportError

USER_AGENT = "jetwatch-notify"


def url_origin(url: str) -> str:
    """``https://hooks.example.com`` of a URL: what may be shown of it (no path, no query)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class WebhookClient:
    """POSTs JSON bodies to one webhook URL over its own session (created on first use)."""

    def __init__(self, url: SecretStr, *, timeout_s: float = 10.0) -> None:
        self._url = url
        self.origin = url_origin(url.get_secret_value())
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def post(self, body: Mapping[str, object]) -> None:
        """Send ``body`` once; return when the webhook answered 2xx."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={hdrs.USER_AGENT: USER_AGENT}
            )
        where = f"webhook at {self.origin}"
        try:
            async with self._session.post(
                self._url.get_secret_value(), json=dict(body), allow_redirects=False
            ) as response:
                text = (await response.text(errors="replace"))[:200]
                status = response.status
                retry_after = response.headers.get(hdrs.RETRY_AFTER)
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            raise TransportError(f"{where}: cannot connect ({reason})") from None
        except TimeoutError:
            raise TransportError(f"{where}: no answer within {self._timeout_s:g} s") from None
        except (aiohttp.ClientError, ValueError) as exc:
            # Not str(exc): aiohttp's messages may quote the whole URL.
            raise TransportError(f"{where}: {type(exc).__name__}") from None
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            retry_after_s = parse_retry_after(retry_after, datetime.now(UTC))
            raise TransportError(
                f"{where} answered {status}", status=status, retry_after_s=retry_after_s
            )
        raise RejectedError(f"{where} answered {status}", status=status, body=text)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
