"""Event mode's source: watchfiles in a thread of its own, change sets sorted into hints."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Final

import structlog
from watchfiles import Change, watch

from jetwatch.intake.scan import is_dir, under_excluded
from jetwatch.intake.watchaudit import inotify_fds, pick_fd

log = structlog.get_logger(__name__)

Changes = set[tuple[Change, str]]

INSTALLED: Final = "installed"  # the watches are in place: changes from now on are seen
STOPPED: Final = "stopped"  # the watcher ended after stop()
Item = Changes | BaseException | str

STEP_MS = 50
DEBOUNCE_MS = 400
STOP_WAIT_S = 10.0
# Watchers are built one at a time, so the inotify descriptor that appears is this one's.
_BUILDING = threading.Lock()


class EventThread:
    """Run ``watchfiles.watch`` over ``root`` in a daemon thread until ``stop()``.

    Building a recursive inotify watcher is synchronous (2 s for a million files); inside
    ``awatch`` it ran on the event loop and stalled everything else. Here the thread builds
    it and then waits for changes; ``get()`` hands out, in order, ``INSTALLED`` once the
    watches are in place, each change set, and finally ``STOPPED`` or the exception that
    ended the watcher. The watcher polls ``is_set`` (this object is its stop event) every
    ``STEP_MS``, so ``stop()`` ends it within a step once it is built. ``fd`` is then the
    watcher's inotify descriptor (None when it cannot be told), for the watch audit.
    """

    def __init__(self, root: str, name: str) -> None:
        self._root = root
        self._stop = threading.Event()
        self._polled = False
        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[Item] = asyncio.Queue()
        self._ended = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name=f"watch:{name}", daemon=True)
        self._fds_before: set[int] | None = None
        self._building = False
        self.fd: int | None = None

    def start(self) -> None:
        self._thread.start()

    async def get(self) -> Item:
        """The next item from the watcher thread (see the class docstring)."""
        return await self._items.get()

    async def stop(self) -> None:
        """Ask the thread to end and wait for it (at most STOP_WAIT_S, then leave it)."""
        self._stop.set()
        if self._thread.ident is None:
            return  # never started
        done, _ = await asyncio.wait({self._ended}, timeout=STOP_WAIT_S)
        if not done:
            # Still building its watches: it sees the flag on its first poll and ends alone.
            log.warning("watcher_thread_slow_to_stop", thread=self._thread.name)

    def is_set(self) -> bool:
        """The stop flag as watchfiles polls it; the first poll means the watches are built."""
        if not self._polled:
            self._polled = True
            self.fd = pick_fd(self._fds_before, self._root)
            self._built()
            self._post(INSTALLED)
        return self._stop.is_set()

    def _built(self) -> None:
        if self._building:
            self._building = False
            _BUILDING.release()

    def _run(self) -> None:
        outcome: Item = STOPPED
        _BUILDING.acquire()
        self._building = True
        try:
            self._fds_before = inotify_fds()
            for changes in watch(
                self._root,
                stop_event=self,
                step=STEP_MS,
                debounce=DEBOUNCE_MS,
                watch_filter=None,
                recursive=True,
                raise_interrupt=False,
                # The scanner skips unreadable directories with a warning; so does the watcher.
                ignore_permission_denied=True,
            ):
                self._post(changes)
        except BaseException as exc:  # every failure ends event mode; the loop decides
            outcome = exc
        finally:
            self._built()
        self._post(outcome)
        self._post_end()

    def _post(self, item: Item) -> None:
        # A closed loop raises RuntimeError: nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    def _post_end(self) -> None:
        def end() -> None:
            if not self._ended.done():
                self._ended.set_result(None)

        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(end)


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
    """One folder's watcher thread, its change sets sorted into what FolderWatch acts on.

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
        self._thread = EventThread(self._root, name)
        self.installed = asyncio.Event()
        self.added_dirs: set[str] = set()
        self.burst_at: float | None = None
        self.root_suspect = False

    async def run(self) -> None:
        """Start the thread and pump its items until it stops; EventsFailed when it fails."""
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
            elif not isinstance(item, str):
                self.on_changes(item)

    async def stop(self) -> None:
        await self._thread.stop()

    @property
    def fd(self) -> int | None:
        """The watcher's inotify descriptor once installed (None: unknown)."""
        return self._thread.fd

    def on_changes(self, changes: Changes) -> None:
        burst = len(changes) > self._burst_threshold
        if burst:
            # watchfiles drops inotify queue overflows silently: assume this burst lost
            # events, and rescan once it calms down. Its hints are still used, so its files
            # start settling now instead of after the calm and the rescan.
            if self.burst_at is None:
                log.warning("watch_burst", folder=self.name, changes=len(changes))
            self.burst_at = asyncio.get_running_loop().time()
            self._wake()
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
