"""Test-only shim that lets aioresponses 0.7.9 build responses on aiohttp 3.14."""

# Upstream issue pnuckowski/aioresponses#289: ClientResponse.__init__ gained a required
# ``stream_writer`` argument. CompatResponse supplies a stand-in, and CompatAioresponses makes
# it the default response class of every registered answer. Drop this once aioresponses is fixed.

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse
from aioresponses import CallbackResult, aioresponses
from yarl import URL


class _StreamWriterStandIn:
    """All ClientResponse reads from the writer of an already-sent request."""

    output_size = 0


class CompatResponse(ClientResponse):
    """A ClientResponse that aioresponses can construct on aiohttp 3.14."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _StreamWriterStandIn())
        super().__init__(method, url, **kwargs)


class CompatAioresponses(aioresponses):
    """aioresponses whose answers default to CompatResponse."""

    def __enter__(self) -> CompatAioresponses:
        super().__enter__()
        return self

    def add(self, url: Any, method: str = "GET", **kwargs: Any) -> None:  # type: ignore[override]
        if kwargs.get("response_class") is None:
            kwargs["response_class"] = CompatResponse
        super().add(url, method, **kwargs)


def callback_result(**kwargs: Any) -> CallbackResult:
    """A CallbackResult for aioresponses callbacks, built with CompatResponse."""
    kwargs.setdefault("response_class", CompatResponse)
    return CallbackResult(**kwargs)
