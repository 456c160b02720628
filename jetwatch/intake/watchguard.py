"""Keeps an events session honest: every directory walked is watched, the folder's own watch
is still there; otherwise the session ends (WatcherFailed) and scans take over, loudly."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import structlog

from jetwatch.domain.backoff import Backoff, Jitter
from jetwatch.intake.scan import DirsSeen
from jetwatch.intake.scanner import WatcherFailed
from jetwatch.intake.watchaudit import (
    Audit,
    DirId,
    audit,
    inotify_fds,
    root_watched,
    watch_limit,
)
from jetwatch.metrics import INOTIFY_WATCHES

log = structlog.get_logger(__name__)

# A directory created a moment ago may still be waiting for its watch in the notify thread.
GRACE_S = 1.0
# Reading a descriptor's watches costs about 0.3 µs per watch: at most 2 % of the time.
PROBE_COST_SHARE = 50
# Reads the watcher's watches, reusing a read at most that many seconds old.
WatchedReader = Callable[[float], Awaitable[set[DirId] | None]]


class WatchGuard:
    """Audits one watcher's inotify descriptor ``fd`` against the directories scans found;
    ``watched`` reads what the descriptor watches (shared by the folders of one watcher)."""

    def __init__(
        self,
        name: str,
        root: str,
        fd: int | None,
        watched: WatchedReader,
        *,
        grace_s: float = GRACE_S,
    ) -> None:
        self.name = name
        self._root = root
        self._fd = fd
        self._watched = watched
        self._grace_s = grace_s
        self._probe_s = 0.0
        self.watches = 0

    async def start(self) -> None:
        """Fail at once when the watcher has no inotify descriptor although /proc shows them."""
        if self._fd is None and await asyncio.to_thread(inotify_fds) is not None:
            raise WatcherFailed("the event watcher has no inotify descriptor: it cannot see events")
        if self._fd is None:
            log.warning("watch_unverified", folder=self.name, reason="/proc cannot be read")

    async def verify(self, dirs: DirsSeen) -> None:
        """Raise WatcherFailed unless the root and every directory of ``dirs`` is watched."""
        await self._verify(dirs, 0.0)

    async def _verify(self, dirs: DirsSeen, reuse_s: float) -> None:
        if self._fd is None:
            return
        found = await self._audit(dirs, reuse_s)
        if found.missing:
            # The notify thread adds a watch when it reads the directory's creation: give
            # it a moment, then look at only those again.
            await asyncio.sleep(self._grace_s)
            found = await self._audit([(relpath, 0) for relpath in found.missing], 0.0)
        if found.problem:
            raise WatcherFailed(self._explain(found))

    async def probe(self, root_id: DirId, reuse_s: float = 0.0) -> None:
        """The cheap periodic look: the descriptor is there and still watches the root
        (``root_id``, as the root check just found it); a read of its watches up to
        ``reuse_s`` old will do (another folder's probe). Nothing else is stat-ed."""
        if self._fd is None:
            return
        started = time.monotonic()
        watched = await self._watched(reuse_s)
        self._probe_s = time.monotonic() - started
        found = root_watched(watched, root_id)
        self._count(found)
        if found.problem:
            raise WatcherFailed(self._explain(found))

    def probe_interval_s(self, at_least_s: float) -> float:
        """How long until the next probe: ``at_least_s``, longer where watches are many."""
        return max(at_least_s, self._probe_s * PROBE_COST_SHARE)

    async def _audit(self, dirs: DirsSeen, reuse_s: float) -> Audit:
        watched = await self._watched(reuse_s)
        found = await asyncio.to_thread(audit, watched, self._root, dirs)
        self._count(found)
        return found

    def _count(self, found: Audit) -> None:
        self.watches = found.watches
        INOTIFY_WATCHES.labels(self.name).set(found.watches)

    def _explain(self, found: Audit) -> str:
        if not found.missing:
            return f"{found.problem}: the event watcher went deaf"
        limit = watch_limit()
        first = ascii(found.missing[0])
        return (
            f"{found.problem} (first: {first}); its watcher holds {found.watches} watches "
            f"and the user's inotify limit (fs.inotify.max_user_watches) is {limit}: "
            'raise it, or set poll = "scan" for this folder'
        )


class EventsRetry:
    """When a folder in SCAN because events failed (or did not fit) tries events again.

    ``base_s`` after the first failure, doubling up to ``max_s``; ``healthy()`` (a whole
    reconcile interval of events without a failure) starts over from ``base_s``.
    Times are loop (monotonic) seconds.
    """

    def __init__(self, base_s: float, max_s: float) -> None:
        self._backoff = Backoff(base_s, max(base_s, max_s), Jitter.EQUAL)
        self._failures = 0
        self.due_at: float | None = None

    def schedule(self, now: float) -> float:
        """Plan the next try after one more failure; returns the delay in seconds."""
        delay_s = self._backoff.delay_s(self._failures, random.random())
        self._failures += 1
        self.due_at = now + delay_s
        return delay_s

    def waiting(self, now: float) -> bool:
        return self.due_at is not None and now < self.due_at

    def healthy(self) -> None:
        self._failures = 0
