"""A short-lived cache of the status document, so viewers cost the daemon almost nothing.

However many consoles, ``jetwatch status --watch`` and scrapers ask, the status is built at
most once per ``ttl_s``, by one task at a time. An answer younger than ``ttl_s`` is served
as is; one younger than twice that is served while a fresh one is built in the background
(a viewer never waits behind a busy ledger); an older one is rebuilt first, so nothing
served is ever more than ``2 * ttl_s`` old, or older than the last :meth:`invalidate`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

log = structlog.get_logger(__name__)

Document = Mapping[str, object]


class StatusCache:
    """Single-flight, time-bounded cache of one async producer's result."""

    def __init__(
        self,
        produce: Callable[[], Awaitable[Document]],
        *,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._produce = produce
        self._ttl_s = ttl_s
        self._clock = clock
        self._value: Document | None = None
        self._at = 0.0
        self._task: asyncio.Task[Document] | None = None
        self._generation = 0

    async def get(self) -> Document:
        """The status, at most ``2 * ttl_s`` old."""
        age_s = self._clock() - self._at
        if self._value is not None and age_s <= self._ttl_s:
            return self._value
        task = self._task or self._start()
        if self._value is not None and age_s <= 2 * self._ttl_s:
            return self._value
        return await asyncio.shield(task)

    def _start(self) -> asyncio.Task[Document]:
        task = asyncio.get_running_loop().create_task(self._build(), name="status-cache")
        self._task = task
        task.add_done_callback(self._done)
        return task

    async def _build(self) -> Document:
        started, generation = self._clock(), self._generation
        value = await self._produce()
        if generation == self._generation:
            self._value, self._at = value, started
        return value

    def invalidate(self) -> None:
        """Something just changed (an operator's action): the next answer is built anew."""
        self._generation += 1
        self._value = None
        self._task = None  # a build under way may predate the change: nobody waits for it

    def _done(self, task: asyncio.Task[Document]) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled() and task.exception() is not None:
            # Whoever awaited it got the error; a background refresh has nobody to tell.
            log.debug("status_refresh_failed", error=repr(task.exception()))

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
