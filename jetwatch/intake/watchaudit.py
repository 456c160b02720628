"""Is a folder's inotify watch really complete? Its descriptor's watches, read from /proc.

watchfiles (through the notify crate) adds a watch for every new directory and drops the
error when the kernel refuses one (``fs.inotify.max_user_watches`` reached): files in that
directory then give no events, silently. The kernel lists every watch of an inotify
descriptor in ``/proc/self/fdinfo/<fd>`` (``inotify wd:.. ino:<hex> sdev:<hex> ...``), so
the directories a scan walked can be compared with the directories really watched.
Everything here is blocking I/O on /proc, meant for a worker thread.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC_FD = Path("/proc/self/fd")
PROC_FDINFO = Path("/proc/self/fdinfo")
# The limit of the user namespace we run in (containers); the global one is fs.inotify's.
MAX_WATCHES_PATHS = (
    Path("/proc/sys/fs/inotify/max_user_watches"),
    Path("/proc/sys/user/max_inotify_watches"),
)
INOTIFY_LINK = "anon_inode:inotify"
# One watch per line: "inotify wd:1 ino:5d2b sdev:800001 mask:... ignored_mask:0 ..." (the
# kernel's fs/notify/fdinfo.c prints ino and sdev in this order). One findall over the
# whole text: splitting a thousand lines into dicts cost 45 ms a look, 1 % of a core idle.
_WATCH_LINE = re.compile(r"^inotify wd:[0-9a-f]+ ino:([0-9a-f]+) sdev:([0-9a-f]+)", re.MULTILINE)

DirId = tuple[int, int]  # (st_dev, st_ino) as os.stat gives them

HELD_MEMO_S = 0.5  # how long one look at every descriptor's watches serves watches_held
_held_lock = threading.Lock()
_held_memo: tuple[float, dict[int, int]] | None = None  # (monotonic, watches per descriptor)


def inotify_fds() -> set[int] | None:
    """This process's inotify descriptors; None when /proc cannot be read (not Linux)."""
    try:
        names = os.listdir(PROC_FD)
    except OSError:
        return None
    found: set[int] = set()
    for name in names:
        try:
            if os.readlink(PROC_FD / name) == INOTIFY_LINK:
                found.add(int(name))
        except (OSError, ValueError):
            continue  # closed meanwhile
    return found


def _user_dev(kernel_dev: int) -> int:
    # fdinfo prints the kernel's dev_t (major << 20 | minor); os.stat uses the user encoding.
    return os.makedev(kernel_dev >> 20, kernel_dev & 0xFFFFF)


def watched_dirs(fd: int) -> set[DirId] | None:
    """(dev, inode) of every watch of inotify descriptor ``fd``; None when it is no inotify."""
    try:
        if os.readlink(PROC_FD / str(fd)) != INOTIFY_LINK:
            return None
        text = (PROC_FDINFO / str(fd)).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return {(_user_dev(int(dev, 16)), int(ino, 16)) for ino, dev in _WATCH_LINE.findall(text)}


def watch_limit() -> int | None:
    """How many inotify watches this user may hold: the lower of the global and namespace limit."""
    limits = []
    for path in MAX_WATCHES_PATHS:
        try:
            limits.append(int(path.read_text(encoding="ascii").strip()))
        except (OSError, ValueError):
            continue
    return min(limits) if limits else None


def _held_by_fd() -> dict[int, int]:
    """Watches per inotify descriptor of this process, looked at most every HELD_MEMO_S."""
    global _held_memo
    with _held_lock:
        now = time.monotonic()
        if _held_memo is not None and now - _held_memo[0] < HELD_MEMO_S:
            return _held_memo[1]
        held: dict[int, int] = {}
        for fd in inotify_fds() or ():
            try:
                text = (PROC_FDINFO / str(fd)).read_text(encoding="ascii", errors="replace")
            except OSError:
                continue  # closed meanwhile
            held[fd] = text.count("\ninotify wd:")  # one line per watch: no need to parse
        _held_memo = (now, held)
        return held


def watches_held(exclude: Iterable[int] = ()) -> int:
    """Watches this process's inotify descriptors hold (other folders' watchers).

    Folders starting together ask within moments of each other (200 at start-up): one look
    at /proc serves them all (HELD_MEMO_S), instead of one per folder over every descriptor.
    Their own watchers add watches in a thread afterwards, so a fresher look would not see
    those either; each watcher's audit is what catches a tree that does not fit.
    """
    skip = set(exclude)
    return sum(n for fd, n in _held_by_fd().items() if fd not in skip)


def watch_budget() -> int | None:
    """Watches a new watcher may still add: the limit minus what this process holds."""
    limit = watch_limit()
    return None if limit is None else max(0, limit - watches_held())


def pick_fd(before: set[int] | None, root: str) -> int | None:
    """The inotify descriptor created since ``before`` that watches ``root``, else None."""
    after = inotify_fds()
    if before is None or after is None:
        return None
    try:
        st = os.stat(root)
    except OSError:
        return None
    new = sorted(after - before)
    for fd in new:
        if (st.st_dev, st.st_ino) in (watched_dirs(fd) or ()):
            return fd
    return new[0] if len(new) == 1 else None


@dataclass(frozen=True, slots=True)
class Audit:
    """What a look at a watcher's descriptor found; ``problem`` is "" when it is complete."""

    watches: int
    problem: str
    missing: tuple[str, ...] = ()


def root_watched(watched: set[DirId] | None, root_id: DirId) -> Audit:
    """Whether the descriptor whose watches are ``watched`` (None: it is gone) still
    watches the folder itself, ``root_id`` ((dev, inode) as os.stat gives them)."""
    if watched is None:
        return Audit(0, "the watcher's inotify descriptor is gone")
    if root_id not in watched:
        return Audit(len(watched), f"the folder itself has no inotify watch ({len(watched)} left)")
    return Audit(len(watched), "")


def audit(watched: set[DirId] | None, root: str, dirs: Sequence[tuple[str, int]]) -> Audit:
    """Check that ``root`` and the walked directories ``dirs`` ((relpath, inode)) are among
    ``watched`` (:func:`watched_dirs` of the watcher's descriptor; None: it is gone).

    A directory whose inode has no watch is stat-ed again: one that vanished or was replaced
    since the walk is not missing. Directories on another device (a mount point inside the
    tree) are compared by their own (dev, inode).
    """
    if watched is None:
        return root_watched(watched, (0, 0))
    try:
        st = os.stat(root)
    except OSError:
        return Audit(len(watched), "")  # the root check reports this, not the audit
    found = root_watched(watched, (st.st_dev, st.st_ino))
    if found.problem or not dirs:
        return found
    inodes = {ino for _dev, ino in watched}
    missing = []
    for relpath, ino in dirs:
        if ino in inodes:
            continue
        try:
            now = os.lstat(os.path.join(root, relpath))
        except OSError:
            continue
        if stat.S_ISDIR(now.st_mode) and (now.st_dev, now.st_ino) not in watched:
            missing.append(relpath)
    if not missing:
        return Audit(len(watched), "")
    return Audit(len(watched), f"{len(missing)} directories have no inotify watch", tuple(missing))
