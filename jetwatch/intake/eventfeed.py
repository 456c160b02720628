"""One folder's share of event mode: its change sets sorted into hints and what to scan."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from watchfiles import Change

from jetwatch.intake.inotify import INSTALLED, STOPPED, Changes
from jetwatch.intake.scan import is_dir, under_excluded
from jetwatch.intake.watchaudit import DirId
from jetwatch.intake.watchhub import WatchHub

log = structlog.get_logger(__name__)

SLICE_CHANGES = 500  # changes sorted between two turns of the event loop


def failure_reason(exc: BaseException) -> str:
    """What people read when the native watcher raised: the cause, not a Rust repr."""
    if isinstance(exc, OSError):
        # watchfiles' own words here are readable ("OS file watch limit reached.").
        return (
            f"the event watcher could not be set up: {str(exc).rstrip('.') or type(exc).__name__}"
        )
    # watchfiles raises its internal error for an event it cannot turn into a path (a name
    # that is not UTF-8) and for errors of the notify thread: either way this one is dead.
    return (
        "the event watcher stopped on an event it could not handle "
        "(for instance a file name that is not UTF-8)"
    )


class EventsFailed(Exception):
    """The event watcher ended: it raised, or stopped by itself."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EventFeed:
    """One folder's share of a watcher thread (:mod:`jetwatch.intake.watchhub`), its change
    sets sorted into what FolderWatch acts on.

    Hints (relative paths, excluded ones dropped) go to ``on_hints``; what needs a scan is
    kept for FolderWatch to read: ``added_dirs`` (directories that appeared: files created
    in them before their watch existed give no events), ``burst_at`` (loop time of the
    last change set larger than ``burst_threshold``: watchfiles drops inotify overflows
    silently, so a burst may have lost events) and ``root_suspect`` (the root itself was
    deleted). ``wake`` is called whenever one of those changes.
    """

    def __init__(
        self,
        *,
        name: str,
        root: str,
        dir_excluded: Callable[[str], bool],
        on_hints: Callable[[set[str]], None],
        wake: Callable[[], None],
        burst_threshold: int,
    ) -> None:
        self.name = name
        self._root = root.rstrip("/") or "/"
        self._prefix = self._root.rstrip("/") + "/"
        self._dir_excluded = dir_excluded
        self._on_hints = on_hints
        self._wake = wake
        self._burst_threshold = burst_threshold
        self._thread = WatchHub.of_running_loop().subscription(self._root, name)
        self.installed = asyncio.Event()
        self.added_dirs: set[str] = set()
        self.burst_at: float | None = None
        self.root_suspect = False

    async def run(self) -> None:
        """Join a watcher thread and pump its items until it stops; EventsFailed when it fails."""
        self._thread.start()
        while True:
            item = await self._thread.get()
            if item == INSTALLED:
                self.installed.set()
            elif item == STOPPED:
                return
            elif isinstance(item, BaseException):
                # Whatever the native watcher raises (OSError, RuntimeError, a decode error
                # for a non-UTF-8 name) ends this watcher; scans take over for a while.
                log.warning("watcher_error", folder=self.name, error=ascii(item))
                raise EventsFailed(failure_reason(item)) from item
            elif isinstance(item, set):
                await self.on_changes(item)

    async def stop(self) -> None:
        await self._thread.stop()

    @property
    def thread_name(self) -> str:
        """The watcher thread serving this folder (shared: "first+N"), "" before it is built."""
        return self._thread.thread_name

    @property
    def fd(self) -> int | None:
        """The watcher's inotify descriptor once installed (None: unknown)."""
        return self._thread.fd

    async def watched(self, max_age_s: float) -> set[DirId] | None:
        """What that descriptor watches, from a read at most ``max_age_s`` old."""
        return await self._thread.watched(max_age_s)

    async def on_changes(self, changes: Changes) -> None:
        """Sort one change set, in slices: a burst's set holds 10,000 changes and more, and
        the loop serves others between slices."""
        burst = len(changes) > self._burst_threshold
        if burst:
            # watchfiles drops inotify queue overflows silently: assume this burst lost
            # events, and rescan once it calms down. Its hints are still used, so its files
            # start settling now instead of after the calm and the rescan.
            if self.burst_at is None:
                log.warning("watch_burst", folder=self.name, changes=len(changes))
            self.burst_at = asyncio.get_running_loop().time()
            self._wake()
        items = list(changes)
        for start in range(0, len(items), SLICE_CHANGES):
            if start:
                await asyncio.sleep(0)
            self._sort(items[start : start + SLICE_CHANGES], burst)

    def _sort(self, changes: list[tuple[Change, str]], burst: bool) -> None:
        hints: set[str] = set()
        for change, abspath in changes:
            if not abspath.startswith(self._prefix):
                if change is Change.deleted and abspath.rstrip("/") == self._root:
                    self.root_suspect = True
                    self._wake()
                continue
            rel = abspath[len(self._prefix) :]
            if not rel or under_excluded(rel, self._dir_excluded):
                continue
            hints.add(rel)
            # inotify race: files created in a new directory before its watch existed
            # produce no events, so the directory is scanned once. In a burst the rescan
            # covers new directories: no stat per added path on the event loop.
            if not burst and change is Change.added and is_dir(abspath):
                self.added_dirs.add(rel)
                self._wake()
        if hints:
            self._on_hints(hints)
