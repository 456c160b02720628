"""One watchfiles thread for many folders: folders that start watching together share it.

A watchfiles watcher is a thread that takes the GIL every STEP_MS to look for changes:
about 0.1 % of a core each when idle, 20 % for 200 folders, whatever their size. Folders
that ask for their watches within GATHER_S of each other (a daemon starting, folders
coming back after an outage) get one watcher: one thread, one inotify descriptor; its
change sets are cut by root in that thread and handed to each folder's Subscription.

A build that fails for a group (the watch limit, reached by all its trees together) is
tried again folder by folder, so one folder's trouble does not cost the others their
events. (A root gone before the build does not fail it: watchfiles skips it, and that
folder's audit finds its root unwatched.) A shared watcher that fails later (a name it
cannot decode) fails all its folders; each scans, retries on its own schedule and gathers
again with whoever retries with it.
A folder that stops watching leaves its group; the thread ends with its last folder.

Folders do not all ask at once (each first reads its ledger rows, picks its mode, ...), so
once no folder has asked for MERGE_QUIET_S the watchers whose folders are all still there
are merged: one new watcher over all their roots is built beside them and takes over
once it watches everything they watched (checked in /proc); the old ones then stop. A
merge needs the inotify budget for a second copy of those watches while it builds; when
that is short, or the check fails, the watchers stay as they are and a merge is tried
again later (the wait doubling up to MERGE_MAX_WAIT_S). The merged build walks all trees
holding the GIL (about 3 s for a million files), once.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence

import structlog

from jetwatch.intake import watchaudit
from jetwatch.intake.inotify import INSTALLED, EventThread, Item
from jetwatch.intake.watchaudit import DirId

log = structlog.get_logger(__name__)

GATHER_S = 0.1  # a group is built once no folder asked for this long ...
GATHER_MAX_S = 2.0  # ... or this long after the first asked (a wave of folders starting)
MERGE_QUIET_S = 2.0
MERGE_MAX_WAIT_S = 600.0
MERGE_BUDGET_SHARE = 1.1  # the budget a merge needs: this many times the watches it copies

_HUBS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WatchHub] = weakref.WeakKeyDictionary()


class Subscription:
    """One folder's share of a watcher: ``get()`` gives what EventThread gives, cut to its
    own root (``INSTALLED``, change sets, then ``STOPPED`` or the exception); ``fd`` is the
    shared inotify descriptor once built; ``watched()`` what it watches (read once for all)."""

    def __init__(self, hub: WatchHub, root: str, name: str) -> None:
        self.root = root
        self.name = name
        self._hub = hub
        self._items: asyncio.Queue[Item] = asyncio.Queue()
        self.group: _Group | None = None

    @property
    def fd(self) -> int | None:
        return None if self.group is None else self.group.thread.fd

    @property
    def thread_name(self) -> str:
        return "" if self.group is None else self.group.thread.name

    def start(self) -> None:
        self._hub.join(self)

    async def get(self) -> Item:
        return await self._items.get()

    async def stop(self) -> None:
        await self._hub.leave(self)

    async def watched(self, max_age_s: float) -> set[DirId] | None:
        """The (dev, inode) of every watch of the shared descriptor, at most ``max_age_s`` old."""
        group = self.group
        if group is None or group.thread.fd is None:
            return None
        return await group.watched(max_age_s)

    def put(self, item: Item) -> None:
        self._items.put_nowait(item)


class _Group:
    """One watcher thread and the folders it serves, by root."""

    def __init__(self, members: Sequence[Subscription]) -> None:
        self.roots = [m.root for m in members]
        name = members[0].name if len(members) == 1 else f"{members[0].name}+{len(members) - 1}"
        self.thread = EventThread(self.roots, name)
        self.members: dict[str, Subscription] = {m.root: m for m in members}
        self.size = len(members)
        self.installed = False
        self.merging: list[_Group] | None = None  # a merge's watcher: the groups it replaces
        self.pump: asyncio.Task[None] | None = None
        self._read_lock = asyncio.Lock()
        self._read_at: float | None = None
        self._read: set[DirId] | None = None

    @property
    def whole(self) -> bool:
        """Installed, and every folder it was built for still uses it."""
        return self.installed and len(self.members) == self.size

    async def watched(self, max_age_s: float) -> set[DirId] | None:
        """Read the descriptor's watches, or reuse a read at most ``max_age_s`` old: the
        folders of one watcher probing it each would read the same thousands of lines."""
        async with self._read_lock:
            now = asyncio.get_running_loop().time()
            if self._read_at is None or now - self._read_at > max_age_s:
                fd = self.thread.fd
                # The module's function, looked up now: tests stand in for the kernel there.
                self._read = None if fd is None else await asyncio.to_thread(
                    watchaudit.watched_dirs, fd
                )  # fmt: skip
                self._read_at = asyncio.get_running_loop().time()
            return self._read


class WatchHub:
    """Gathers folders' requests for watches into shared watcher threads (one per loop)."""

    def __init__(
        self,
        *,
        gather_s: float = GATHER_S,
        gather_max_s: float = GATHER_MAX_S,
        merge_quiet_s: float = MERGE_QUIET_S,
    ) -> None:
        self._gather_s = gather_s
        self._merge_quiet_s = merge_quiet_s
        self._gather_max_s = gather_max_s
        self._waiting: list[Subscription] = []
        self._last_join = 0.0
        self._gathering: asyncio.Task[None] | None = None
        self._groups: set[_Group] = set()
        self._merge_wait_s = merge_quiet_s
        self._last_change = 0.0
        self._merging: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()

    @classmethod
    def of_running_loop(cls) -> WatchHub:
        loop = asyncio.get_running_loop()
        hub = _HUBS.get(loop)
        if hub is None:
            hub = _HUBS[loop] = cls()
        return hub

    def subscription(self, root: str, name: str) -> Subscription:
        return Subscription(self, root, name)

    @property
    def threads(self) -> int:
        """Watcher threads running or being built."""
        return len(self._groups)

    def join(self, sub: Subscription) -> None:
        self._waiting.append(sub)
        self._last_join = asyncio.get_running_loop().time()
        if self._gathering is None or self._gathering.done():
            self._gathering = asyncio.create_task(self._gather(), name="watch-gather")
        self._changed()

    async def leave(self, sub: Subscription) -> None:
        if sub in self._waiting:
            self._waiting.remove(sub)
            return
        group = sub.group
        if group is None or group.members.get(sub.root) is not sub:
            return
        del group.members[sub.root]
        if not group.members and group in self._groups:
            self._groups.discard(group)
            await group.thread.stop()  # its pump ends on the thread's last item

    async def _gather(self) -> None:
        loop = asyncio.get_running_loop()
        first = loop.time()
        while True:
            due = min(self._last_join + self._gather_s, first + self._gather_max_s)
            if loop.time() >= due:
                break
            await asyncio.sleep(due - loop.time())
        members, self._waiting = self._waiting, []
        # One root per watcher (two folders on one root cannot both hold its lock).
        by_root: dict[str, Subscription] = {}
        for sub in members:
            if sub.root in by_root:
                self._start([by_root.pop(sub.root)])
            by_root[sub.root] = sub
        if by_root:
            self._start(list(by_root.values()))

    def _start(self, members: Sequence[Subscription]) -> None:
        group = _Group(members)
        for sub in members:
            sub.group = group
        self._groups.add(group)
        group.thread.start()
        group.pump = asyncio.create_task(self._pump(group), name=f"watch-pump:{group.thread.name}")

    async def _pump(self, group: _Group) -> None:
        """Hand the thread's items to the group's folders until its last one."""
        while True:
            item = await group.thread.get()
            if item == INSTALLED:
                await self._installed(group)
            elif isinstance(item, dict):
                for root, changes in item.items():
                    member = group.members.get(root)
                    if member is not None:
                        member.put(changes)
            elif not isinstance(item, set):  # STOPPED, or the exception that ended it
                self._ended(group, item)
                return

    async def _installed(self, group: _Group) -> None:
        if group.merging is not None:
            await self._take_over(group, group.merging)
            return
        group.installed = True
        if group.size > 1:
            log.info("watch_shared", folders=group.size, thread=group.thread.name)
        for sub in list(group.members.values()):
            sub.put(INSTALLED)
        self._changed()

    def _ended(self, group: _Group, item: Item) -> None:
        self._groups.discard(group)
        if group.merging is not None:  # a merge's build failed: the old watchers stay
            group.merging = None
            self._merge_wait_s = min(self._merge_wait_s * 2, MERGE_MAX_WAIT_S)
            log.info("watch_merge_failed", error=ascii(item), retry_s=self._merge_wait_s)
            self._changed()
            return
        if isinstance(item, BaseException) and not group.installed and group.size > 1:
            # One root's trouble failed the whole build: each folder on its own.
            log.info("watch_group_split", folders=group.size, error=ascii(item))
            for sub in list(group.members.values()):
                self._start([sub])
            return
        for sub in list(group.members.values()):
            sub.put(item)

    # -- merging --------------------------------------------------------------------------

    def _changed(self) -> None:
        """A folder asked or a watcher got built: merge once that has been quiet a while."""
        self._last_change = asyncio.get_running_loop().time()
        if self._merging is None or self._merging.done():
            self._merging = asyncio.create_task(self._merge_when_quiet(), name="watch-merge")

    async def _merge_when_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = self._last_change + self._merge_wait_s
            if loop.time() < due:
                await asyncio.sleep(due - loop.time())
                continue
            olds = [g for g in self._groups if g.whole and g.merging is None]
            if len(olds) < 2 or any(g.merging is not None for g in self._groups):
                return
            seen = [await g.watched(0.0) for g in olds]
            held = sum(len(w or ()) for w in seen)
            budget = await asyncio.to_thread(watchaudit.watch_budget)
            if budget is None or budget >= held * MERGE_BUDGET_SHARE:
                break
            self._merge_wait_s = min(self._merge_wait_s * 2, MERGE_MAX_WAIT_S)
            self._last_change = loop.time()
            log.info("watch_merge_skipped", watchers=len(olds), watches=held, budget=budget,
                     retry_s=self._merge_wait_s)  # fmt: skip
        merged = _Group([sub for g in olds for sub in g.members.values()])
        merged.members = {}  # it serves nobody until it has taken over
        merged.merging = olds
        self._groups.add(merged)
        merged.thread.start()
        merged.pump = asyncio.create_task(self._pump(merged), name="watch-pump:merge")

    async def _take_over(self, merged: _Group, olds: list[_Group]) -> None:
        """``merged`` is built: it replaces ``olds`` if it watches all that they watch."""
        merged.merging = None
        merged.installed = True
        olds = [g for g in olds if g in self._groups and g.whole]
        before = [await g.watched(0.0) for g in olds]
        after = await merged.watched(0.0)
        wanted = set().union(*(w or set() for w in before))
        if not olds or after is None or not wanted <= after:
            missing = len(wanted - (after or set()))
            self._merge_wait_s = min(self._merge_wait_s * 2, MERGE_MAX_WAIT_S)
            log.info("watch_merge_failed", missing=missing, retry_s=self._merge_wait_s)
            merged.members = {}
            self._groups.discard(merged)
            self._stop_later(merged)
            self._changed()
            return
        for old in olds:
            for sub in old.members.values():
                sub.group = merged
                merged.members[sub.root] = sub
            old.members = {}
            self._groups.discard(old)
            self._stop_later(old)
        merged.size = len(merged.members)
        self._merge_wait_s = self._merge_quiet_s
        log.info("watch_merged", folders=merged.size, watchers=len(olds), watches=len(after),
                 thread=merged.thread.name)  # fmt: skip
        self._changed()  # watchers built meanwhile join the next merge

    def _stop_later(self, group: _Group) -> None:
        task = asyncio.create_task(group.thread.stop(), name=f"watch-stop:{group.thread.name}")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
