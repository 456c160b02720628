"""One folder's watcher: inotify events and scans turned into path hints and stats, no decisions."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from jetwatch.domain.settle import FileStat
from jetwatch.intake.dirindex import DirIndex, dir_times_untrusted
from jetwatch.intake.eventfeed import EventFeed, EventsFailed
from jetwatch.intake.events import Hints, StateChanged, WatchEvent
from jetwatch.intake.mounts import WatchMode, WatchState, pick_mode
from jetwatch.intake.root import FolderHeld, FolderRoot, RootId
from jetwatch.intake.scan import DirsSeen, ScanReport, outermost, under_excluded
from jetwatch.intake.scanner import FolderDown, TreeScanner, WatcherFailed
from jetwatch.intake.scanpasses import ScanPasses, with_beside
from jetwatch.intake.watchguard import EventsRetry, WatchGuard
from jetwatch.metrics import WATCH_FAILURES, WATCH_MODE

log = structlog.get_logger(__name__)

HELD_RETRY_S = 5.0  # a folder owned by another process is looked at again this often
PROBE_EVERY_CHECKS = 6  # root checks (a stat) per watch probe (/proc: 8 ms at 1,000 watches)


class FolderWatch:
    """Watch one folder and feed the intake; run() until cancelled.

    Truth comes from scans, events are hints: a full scan at start and after every outage, then
    either EVENTS (watchfiles hints, a subdirectory scan for each new directory, a full rescan
    after a burst, a jittered reconcile scan every ``reconcile_s``) or SCAN (a pass every
    ``scan_interval_s``: directories are stat-ed and only those whose times changed are listed,
    which finds every new, renamed or deleted file; a file rewritten in place changes no directory,
    so a full walk still runs every ``reconcile_s``, and every pass is full where directory times
    cannot be trusted). A missing or replaced root makes the folder DOWN; it retries with
    exponential backoff (``backoff_initial_s`` → ``backoff_max_s``) and resumes with a full scan.
    EVENTS is reported only once the watcher is in place and audited (:class:`WatchGuard`): after
    each full scan and each new directory, every directory walked must hold an inotify watch, and
    every ``root_check_s`` the root must be the same directory, its own watch still there (every
    PROBE_EVERY_CHECKS checks). When the watcher fails (it raised, e.g. on a name that is not
    UTF-8), is incomplete (the inotify limit was reached) or went deaf, the folder is in SCAN at
    once, says why, and tries events again after ``events_retry_s`` (doubling to ``reconcile_s``).

    What it finds reaches ``on_event`` as typed events (:mod:`jetwatch.intake.events`), on the
    event loop. ``accept``, ``dir_excluded`` and ``scan_filter`` run in a worker thread during
    scans and must be pure; ``scan_filter`` drops files of a chunk before it becomes a ScanChunk
    (they still count as seen): the files already known, which are nearly all of them, then cost
    the loop nothing. Hints carry relative paths of files *or directories* that were added,
    changed, deleted or moved (a directory moved away is one hint for the directory only); nothing
    about them was stat-ed. Excluded paths are dropped. Bursts larger than ``burst_threshold`` give
    their hints and a full rescan once calm (``burst_calm_s``): watchfiles drops inotify overflows
    silently.
    """

    def __init__(
        self,
        *,
        name: str,
        root: Path,
        poll: str,
        scan_interval_s: float,
        reconcile_s: float = 600.0,
        accept: Callable[[str], bool],
        dir_excluded: Callable[[str], bool],
        on_event: Callable[[WatchEvent], None],
        burst_threshold: int = 1000,
        burst_calm_s: float = 2.0,
        root_check_s: float = 5.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        chunk_files: int = 2000,
        max_watches: int | None = None,
        scan_filter: Callable[[list[FileStat]], list[FileStat]] | None = None,
        events_retry_s: float = 5.0,
    ) -> None:
        self.name = name
        self.root = Path(os.path.abspath(root))
        self._poll = poll
        self._scan_interval_s = scan_interval_s
        self._reconcile_s = reconcile_s
        self._dir_excluded = dir_excluded
        self._on_event = on_event
        self._burst_threshold = burst_threshold
        self._burst_calm_s = burst_calm_s
        self._root_check_s = root_check_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._max_watches = max_watches
        self._scanner = TreeScanner(
            name=name,
            root=self.root,
            accept=accept,
            dir_excluded=dir_excluded,
            on_event=on_event,
            chunk_files=chunk_files,
            scan_filter=scan_filter,
        )
        self._state = WatchState(WatchMode.DOWN, "not started", time.time())
        self._mode = WatchMode.DOWN
        self._mode_reason = "not started"
        self._retry = EventsRetry(events_retry_s, reconcile_s)  # after events failed
        self._guard: WatchGuard | None = None
        self._root = FolderRoot(name, self.root)  # its identity and its lock
        self._root_id: RootId | None = None
        self._wake = asyncio.Event()
        self._requests: set[str] = set()
        self._feed: EventFeed | None = None  # EVENTS mode's watcher
        self._up = False
        self._next_reconcile_at = 0.0
        self._next_check_at = self._next_probe_at = 0.0
        self._passes = ScanPasses(name)  # SCAN mode's index of directories

    @property
    def state(self) -> WatchState:
        """The current watch state."""
        return self._state

    def request_rescan(self, subdir: str = "") -> None:
        """Ask for a scan of ``subdir`` ("" = full scan) soon; call from the event loop."""
        reldir = subdir.strip("/")
        if ".." in reldir.split("/"):
            raise ValueError(f"subdir must be relative to the folder root: {subdir!r}")
        self._requests.add(reldir)
        self._wake.set()

    async def run(self) -> None:
        """Watch until cancelled; outages are retried, callback errors propagate."""
        delay_s = self._backoff_initial_s
        try:
            while True:
                self._up = False
                try:
                    await self._session()
                except FolderDown as down:
                    if self._up:
                        delay_s = self._backoff_initial_s
                    if isinstance(down, FolderHeld):  # one flock attempt: cheap to repeat
                        delay_s = min(delay_s, HELD_RETRY_S)
                    self._set_state(WatchMode.DOWN, down.reason)
                    log.warning(
                        "folder_down", folder=self.name, reason=down.reason, retry_s=delay_s
                    )
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, self._backoff_max_s)
        finally:
            self._root.close()
            for mode in WatchMode:
                WATCH_MODE.labels(folder=self.name, mode=mode.value).set(0)
            log.info("folder_watch_stopped", folder=self.name)

    async def run_once(self) -> ScanReport | None:
        """One full scan (choosing the mode first if needed); None when the folder is down."""
        try:
            if self._root_id is None:
                await self._choose_mode()
            return await self._scan("")
        except FolderDown as down:
            self._set_state(WatchMode.DOWN, down.reason)
            return None

    # -- session: one stretch of watching between outages ---------------------------------

    async def _session(self) -> None:
        await self._choose_mode()
        if self._mode is WatchMode.EVENTS:
            try:
                await self._events_loop()
            except WatcherFailed as failed:
                await self._events_lost(failed.reason)
        await self._scan_loop()  # returns when events are to be tried again

    async def _choose_mode(self) -> None:
        self._root_id = await self._root.open()  # FolderDown when missing or owned elsewhere
        now = asyncio.get_running_loop().time()
        if self._retry.waiting(now) and self._poll != "scan":
            mode, reason = WatchMode.SCAN, self._mode_reason  # back from an outage: keep waiting
        else:
            self._retry.due_at = None
            mode, reason, retry = await asyncio.to_thread(
                pick_mode, self.root, self._poll, max_watches=self._max_watches
            )
            if retry:  # over the watch limit: the limit, or the tree, may shrink
                reason = self._retry_later(reason)
        await self._enter(mode, reason)
        if mode is WatchMode.SCAN and self._poll != "scan":
            log.warning(
                "watch_fallback_to_scan", folder=self.name, root=str(self.root), reason=reason
            )
        else:
            log.info("watch_mode_chosen", folder=self.name, mode=mode.value, reason=reason)

    def _retry_later(self, reason: str) -> str:
        delay_s = self._retry.schedule(asyncio.get_running_loop().time())
        return f"{reason}; events tried again in {delay_s:.0f} s"

    async def _enter(self, mode: WatchMode, reason: str) -> None:
        self._mode, self._mode_reason = mode, reason
        self._passes.index = None
        if mode is WatchMode.SCAN:
            if self._passes.off is None:
                self._passes.off = await asyncio.to_thread(dir_times_untrusted, self.root)
            # EVENTS is reported only once the watcher is verified (_events_loop).
            self._set_state(mode, reason)

    async def _events_lost(self, reason: str) -> None:
        """The watcher failed, is incomplete or deaf: scan from now on, say so, retry later."""
        WATCH_FAILURES.labels(self.name).inc()
        reason = self._retry_later(reason)
        log.error(
            "watch_fallback_to_scan",
            folder=self.name,
            root=str(self.root),
            reason=reason,
            scan_interval_s=self._scan_interval_s,
        )
        await self._enter(WatchMode.SCAN, f"{reason}; scanning instead")

    async def _check_root(self) -> None:
        await self._root.check(self._root_id)

    async def _scan_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_scan_at = loop.time()  # the first pass is a full walk: no index yet
        while True:
            retry_at = self._retry.due_at
            if retry_at is not None and loop.time() >= retry_at:
                return  # a new session tries events again
            if loop.time() >= next_scan_at or "" in self._requests:
                started = loop.time()
                await self._scan_pass()
                self._up = True
                if self._passes.off is None:
                    # Passes are cheap now: one interval from the start of the last one, so a
                    # file that arrived during a long full walk waits one interval, not two.
                    gap_s = min(self._scan_interval_s, 1.0)
                    next_scan_at = max(started + self._scan_interval_s, loop.time() + gap_s)
                else:
                    # From the end of a scan: a slow share never gets scans back to back.
                    next_scan_at = loop.time() + self._scan_interval_s
            else:
                await self._scan_subdirs()
            await self._sleep_until(min(next_scan_at, retry_at or next_scan_at))

    async def _scan_pass(self) -> None:
        loop = asyncio.get_running_loop()
        full_due = "" in self._requests or loop.time() >= self._next_reconcile_at
        if await self._passes.run(functools.partial(self._scan, ""), full_due=full_due):
            self._next_reconcile_at = loop.time() + self._jittered_reconcile_s()

    async def _events_loop(self) -> None:
        feed = self._feed = EventFeed(
            name=self.name,
            root=os.fspath(self.root),
            dir_excluded=self._dir_excluded,
            on_hints=lambda paths: self._on_event(Hints(paths)),
            wake=self._wake.set,
            burst_threshold=self._burst_threshold,
        )
        pump = asyncio.create_task(feed.run(), name=f"watch-{self.name}")
        pump.add_done_callback(lambda _task: self._wake.set())
        try:
            # Scan once the watches are in place, so files written during the scan give
            # hints. The thread builds them (2 s at a million files) while the loop runs on.
            waiter = asyncio.ensure_future(feed.installed.wait())
            try:
                await asyncio.wait({waiter, pump}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            await self._raise_if_stopped(pump)
            guard = self._guard = WatchGuard(self.name, os.fspath(self.root), feed.fd, feed.watched)
            await guard.start()
            log.info("watch_installed", folder=self.name, thread=feed.thread_name)  # scan next
            await with_beside(self._full_scan_audited(guard), self._wake, self._scan_subdirs)
            self._up = True
            self._set_state(WatchMode.EVENTS, self._mode_reason)
            now = asyncio.get_running_loop().time()
            self._next_reconcile_at = now + self._jittered_reconcile_s()
            self._next_check_at = now + self._root_check_s
            self._next_probe_at = now + self._root_check_s * PROBE_EVERY_CHECKS
            while True:
                await self._raise_if_stopped(pump)
                await self._sleep_until(await self._events_step(feed))
        finally:
            pump.cancel()
            await asyncio.wait({pump})
            if not pump.cancelled():
                pump.exception()  # retrieved: it was handled above, or superseded
            await feed.stop()
            self._feed = self._guard = None

    async def _events_step(self, feed: EventFeed) -> float:
        """Do what is due in EVENTS mode; return when to look again (loop time)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        guard = self._guard
        assert guard is not None
        if feed.root_suspect or now >= self._next_check_at:
            suspect, feed.root_suspect = feed.root_suspect, False
            await self._check_root()
            self._next_check_at = now + self._root_check_s
            if suspect or now >= self._next_probe_at:
                assert self._root_id is not None  # the session opened it; the check kept it
                every_s = self._root_check_s * PROBE_EVERY_CHECKS  # reads shared by its folders
                await guard.probe(self._root_id, reuse_s=every_s)
                self._next_probe_at = now + guard.probe_interval_s(every_s)
        burst_due_at = None if feed.burst_at is None else feed.burst_at + self._burst_calm_s
        reconcile_due = now >= self._next_reconcile_at
        if reconcile_due or "" in self._requests or (burst_due_at and now >= burst_due_at):
            feed.burst_at = None
            await self._full_scan_audited(guard)
            if reconcile_due:
                self._retry.healthy()  # a whole reconcile interval without a failure
            self._next_reconcile_at = loop.time() + self._jittered_reconcile_s()
            return loop.time()  # look again at once: events may have queued up meanwhile
        await self._scan_subdirs()
        deadlines = [self._next_reconcile_at, self._next_check_at]
        if burst_due_at is not None:
            deadlines.append(burst_due_at)
        return min(deadlines)

    def _jittered_reconcile_s(self) -> float:
        # Jitter keeps many folders (and many hosts on one NAS) from scanning in step.
        return self._reconcile_s * random.uniform(0.75, 1.25)

    async def _raise_if_stopped(self, pump: asyncio.Task[None]) -> None:
        if not pump.done():
            return
        exc = pump.exception()
        if exc is not None and not isinstance(exc, EventsFailed):
            raise exc  # a callback bug: let the process see it
        await self._check_root()  # a vanished root also ends the watcher: say that
        reason = exc.reason if isinstance(exc, EventsFailed) else "the event watcher stopped"
        raise WatcherFailed(reason)

    async def _full_scan_audited(self, guard: WatchGuard) -> None:
        """A full scan, then the audit: every directory it walked must be watched."""
        dirs: DirsSeen = []
        if await self._scan("", dirs_seen=dirs) is not None:
            await guard.verify(dirs)

    # -- scanning -------------------------------------------------------------------------

    async def _scan_subdirs(self) -> None:
        wanted = {d for d in self._requests if d}
        if self._feed is not None:
            wanted |= self._feed.added_dirs
            self._feed.added_dirs.clear()
        self._requests.difference_update(wanted)
        guard = self._guard
        for reldir in outermost(wanted):
            # A subdirectory scan prunes below its start only: ``accept`` checks no ancestor.
            if under_excluded(reldir, self._dir_excluded):
                continue
            # In EVENTS mode a new directory and those found in it must be watched: when
            # the inotify limit is reached, notify drops the error and the tree goes deaf.
            dirs: DirsSeen | None = None if guard is None else [(reldir, 0)]
            if await self._scan(reldir, dirs_seen=dirs) is not None and guard and dirs:
                await guard.verify(dirs)

    async def _scan(
        self,
        subdir: str,
        *,
        record: DirIndex | None = None,
        changed: DirIndex | None = None,
        dirs_seen: DirsSeen | None = None,
    ) -> ScanReport | None:
        """One scan through the scanner; a full one takes the full-scan requests with it."""
        if not subdir and changed is None:
            self._requests.clear()  # requests made during the scan stay for the next one
        return await self._scanner.scan(
            subdir, self._mode, self._mode_reason, self._check_root,
            record=record, changed=changed, dirs_seen=dirs_seen,
        )  # fmt: skip

    # -- plumbing -------------------------------------------------------------------------

    async def _sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (loop time) or a wake-up; state is re-read afterwards."""
        delay_s = deadline - asyncio.get_running_loop().time()
        if delay_s > 0 and not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay_s)
        self._wake.clear()

    def _set_state(self, mode: WatchMode, reason: str) -> None:
        if (mode, reason) == (self._state.mode, self._state.reason):
            return
        self._state = WatchState(mode, reason, time.time())
        for each in WatchMode:
            WATCH_MODE.labels(folder=self.name, mode=each.value).set(1 if each is mode else 0)
        self._on_event(StateChanged(self._state))
