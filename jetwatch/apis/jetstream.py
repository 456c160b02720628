"""The vendor ``jetstream`` module behind a thread: connect, authenticate, call, translate errors.

The module is synchronous and documents no thread safety, so every call of one connection
runs on one dedicated worker thread (never on the event loop) and calls are serialised.
A call that does not return within ``call_timeout_s`` abandons that thread and connection;
the next call connects again.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog
from pydantic import SecretStr

from jetwatch.errors import (
    AuthError,
    ConfigError,
    OutcomeUnknownError,
    TransportError,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

MODULE_MISSING = "the jetstream module is not installed: install the vendor's Python API"
# Failures of the connection itself; anything else the vendor raises is an API answer.
_CONNECTION_ERRORS = (OSError, EOFError, TimeoutError)


def load_module() -> Any:
    """``import jetstream`` (the vendor's module, not on PyPI) or a ConfigError saying so."""
    try:
        return importlib.import_module("jetstream")
    except ImportError as exc:
        raise ConfigError([("jetstream", MODULE_MISSING)]) from exc


def module_available() -> bool:
    """True when the vendor module can be imported (for ``check``)."""
    return importlib.util.find_spec("jetstream") is not None


class VendorSession:
    """One connected, authenticated ``api`` object of the vendor module, used from a thread."""

    def __init__(
        self,
        module: Any,
        host: str,
        port: int,
        username: str,
        password: SecretStr,
        *,
        call_timeout_s: float = 60.0,
    ) -> None:
        self._module = module
        self._address = (host, port)
        self._username = username
        self._password = password
        self._call_timeout_s = call_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._api: Any = None
        self._lock = asyncio.Lock()
        self.generation = 0  # bumps on every new connection (cached destinations expire)

    async def call(self, what: str, fn: Callable[[Any], T], *, idempotent: bool = True) -> T:
        """Run ``fn(api)`` on the worker thread; vendor failures become the ApiError tree.

        A non-idempotent call (``createTransfer``) that fails in any way may still have
        taken effect: OutcomeUnknownError. Other failures are retryable transport errors.
        """
        api = await self._connected()
        try:
            return await self._run(fn, api)
        except Exception as exc:
            if isinstance(exc, _CONNECTION_ERRORS):
                await self.close()
            reason = type(exc).__name__
            if not idempotent:
                log.error("jetstream_outcome_unknown", call=what, reason=reason)
                raise OutcomeUnknownError(
                    f"JetStream {what}: {reason}; it may have taken effect"
                ) from exc
            raise TransportError(f"JetStream {what} failed: {reason}: {exc}") from exc

    async def close(self) -> None:
        """Disconnect (best effort) and let the worker thread go."""
        api, executor = self._api, self._executor
        self._api, self._executor = None, None
        if executor is None:
            return
        if api is not None:
            loop = asyncio.get_running_loop()
            try:
                future = loop.run_in_executor(executor, api.disconnect)
                await asyncio.wait_for(future, self._call_timeout_s)
            except Exception as exc:  # a dead connection may not even disconnect
                log.info("jetstream_disconnect_failed", reason=type(exc).__name__)
        executor.shutdown(wait=False, cancel_futures=True)

    async def _connected(self) -> Any:
        async with self._lock:  # one connect at a time; later callers reuse it
            if self._api is not None:
                return self._api
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="jetstream")
            host, port = self._address
            try:
                api = await self._run(lambda _: self._module.JetStream().api(host, port), None)
                await self._run(lambda a: a.connect(), api)
            except Exception as exc:
                await self.close()
                raise TransportError(
                    f"cannot connect to JetStream at {host}:{port}: {type(exc).__name__}: {exc}"
                ) from exc
            try:
                secret = self._password.get_secret_value()
                await self._run(lambda a: a.server.auth(self._username, secret), api)
            except Exception as exc:
                self._api = api
                await self.close()
                if isinstance(exc, _CONNECTION_ERRORS):
                    raise TransportError(f"JetStream auth: {type(exc).__name__}") from exc
                # Not chained: the vendor's message might quote what was sent.
                raise AuthError(f"JetStream refused user {self._username!r}", status=401) from None
            self._api = api
            self.generation += 1
            log.info("jetstream_connected", host=host, port=port, username=self._username)
            return api

    async def _run(self, fn: Callable[[Any], T], api: Any) -> T:
        executor = self._executor
        if executor is None:
            raise ConnectionError("the JetStream connection was closed")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(executor, functools.partial(fn, api))
        try:
            return await asyncio.wait_for(future, self._call_timeout_s)
        except TimeoutError:
            # The thread is stuck in the vendor call: abandon it and its connection.
            self._api, self._executor = None, None
            executor.shutdown(wait=False, cancel_futures=True)
            raise
