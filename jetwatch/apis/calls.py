"""The values an API exchange works with: a Call, its Reply, a client's settings and seams.

Split from :mod:`jetwatch.apis.exchange` (which re-exports them) so that module keeps to
sending, retrying and mapping failures.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypedDict

import aiohttp
from yarl import URL

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Call:
    """One logical API call; ``route`` is the template used in metrics and logs."""

    method: str
    route: str
    url: URL
    params: dict[str, str] | None = None
    body: Any = field(default=None, repr=False)  # the token request body holds the secret
    idempotent: bool = True
    auth: bool = True


@dataclass(frozen=True, slots=True)
class Reply:
    """A 2xx answer (or, internally, any answer) as status, raw body and Retry-After."""

    status: int
    body: bytes = field(repr=False)
    retry_after: str | None


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Timeouts, retry budget, pacing and token margin of one client."""

    request_timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_retries: int = 5  # retries after the first attempt
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    rate_limit_per_s: float = 20.0  # 0 disables the client-side limit
    token_margin_s: float = 60.0
    proxy: str = ""  # "" = the environment's (HTTPS_PROXY, NO_PROXY), "direct", or a URL
    ca_file: Path | None = None  # trusted besides the system store


@dataclass(frozen=True, slots=True)
class Seams:
    """The session and the seams tests replace: ``sleep``, ``clock`` (monotonic s), ``rand``."""

    session: aiohttp.ClientSession | None = None
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random


class ClientOptions(TypedDict, total=False):
    """Keyword options of every API client; ``max_retries`` counts retries after the first."""

    session: aiohttp.ClientSession | None
    request_timeout_s: float
    connect_timeout_s: float
    max_retries: int
    backoff_base_s: float
    backoff_max_s: float
    rate_limit_per_s: float
    token_margin_s: float
    proxy: str
    ca_file: Path | None
    sleep: Sleep
    clock: Callable[[], float]
    rand: Callable[[], float]


_SEAMS = frozenset(f.name for f in fields(Seams))


def client_parts(options: ClientOptions, **defaults: Any) -> tuple[TransportSettings, Seams]:
    """A client's options split into its transport settings and its seams."""
    given: dict[str, Any] = {**defaults, **options}
    seams = Seams(**{k: v for k, v in given.items() if k in _SEAMS})
    settings = TransportSettings(**{k: v for k, v in given.items() if k not in _SEAMS})
    return replace(settings, max_retries=max(0, settings.max_retries)), seams
