"""Event mode's source: watchfiles in a thread of its own over one or more folder roots;
its change sets are cut by root in that thread, so the event loop never sorts a burst."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Final

import structlog
from watchfiles import Change, watch

from jetwatch.intake.watchaudit import inotify_fds, pick_fd

log = structlog.get_logger(__name__)

Changes = set[tuple[Change, str]]
ByRoot = dict[str, Changes]  # a change set cut by the root its paths are under

INSTALLED: Final = "installed"  # the watches are in place: changes from now on are seen
STOPPED: Final = "stopped"  # the watcher ended after stop()
Item = ByRoot | Changes | BaseException | str

STEP_MS = 50
DEBOUNCE_MS = 400
STOP_WAIT_S = 10.0
# Watchers are built one at a time, so the inotify descriptor that appears is this one's.
_BUILDING = threading.Lock()


class EventThread:
    """Run ``watchfiles.watch`` over ``roots`` in a daemon thread until ``stop()``.

    ``get()`` hands out, in order, ``INSTALLED`` once the watches are in place, each change
    set cut by root (:func:`by_root`), and finally ``STOPPED`` or the exception that ended
    the watcher. The watcher polls ``is_set`` (this object is its stop event) every
    ``STEP_MS``, so ``stop()`` ends it within a step once it is built. ``fd`` is then the
    watcher's inotify descriptor (None when it cannot be told), for the watch audit.
    Building the watches walks the whole tree while holding the GIL (about 3 s for a
    million files): the loop stalls that long whatever thread builds, which is one more
    reason to build one watcher for many folders rather than one each.
    """

    def __init__(self, roots: Sequence[str], name: str) -> None:
        self._roots = list(roots)
        self.name = name
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
            self.fd = pick_fd(self._fds_before, self._roots[0])
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
                *self._roots,
                stop_event=self,
                step=STEP_MS,
                debounce=DEBOUNCE_MS,
                watch_filter=None,
                recursive=True,
                raise_interrupt=False,
                # The scanner skips unreadable directories with a warning; so does the watcher.
                ignore_permission_denied=True,
            ):
                self._post(by_root(changes, self._roots))
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


def by_root(changes: Changes, roots: Sequence[str]) -> ByRoot:
    """``changes`` cut by the root each path is under (or is: a root deleted); a path under
    two nested roots goes to both. Roots are absolute, without a trailing slash but "/"."""
    if len(roots) == 1:
        return {roots[0]: changes}
    wanted = set(roots)
    found: ByRoot = {}
    for item in changes:
        path = item[1]
        cut = len(path)
        while cut >= 0:
            root = path[:cut] or "/"
            if root in wanted:
                found.setdefault(root, set()).add(item)
            if cut == 0:
                break
            cut = path.rfind("/", 0, cut)
    return found
