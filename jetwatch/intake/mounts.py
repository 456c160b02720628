"""Choosing how to watch a folder: inotify events, or scans where events cannot be trusted."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import structlog

from jetwatch.intake.watchaudit import watch_budget, watch_limit

log = structlog.get_logger(__name__)

MOUNTINFO = Path("/proc/self/mountinfo")
MAX_USER_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")

# inotify only sees writes made through this kernel; on these the writer is usually
# another host (or a FUSE daemon), so events are missing (complaint 2). virtiofs is how
# Docker Desktop and VMs share host folders.
NETWORK_FS_TYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "fuse", "fuseblk"}
    | {"virtiofs"}
)

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class WatchMode(StrEnum):
    """How a folder is watched right now; DOWN when its root is missing or the watcher broke."""

    EVENTS = "events"
    SCAN = "scan"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class WatchState:
    """How a folder is watched now, why, and since when (wall-clock epoch seconds)."""

    mode: WatchMode
    reason: str
    since: float


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _is_under(path: str, mount_point: str) -> bool:
    return mount_point == "/" or path == mount_point or path.startswith(mount_point + "/")


def mount_fs_type(path: Path, mountinfo_text: str) -> str | None:
    """Filesystem type of the mount holding ``path`` (longest mount-point prefix wins)."""
    target = os.path.realpath(path)
    best_len, best_type = -1, None
    for line in mountinfo_text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount_point = _unescape(fields[4])
        # ">=": a later line on the same mount point is mounted on top of the earlier one.
        if _is_under(target, mount_point) and len(mount_point) >= best_len:
            best_len, best_type = len(mount_point), right.split()[0]
    return best_type


def network_fs_type(path: Path, mountinfo_text: str | None = None) -> str | None:
    """The filesystem type when ``path`` is on a network/FUSE mount, else None.

    ``mountinfo_text`` defaults to /proc/self/mountinfo; unreadable (not Linux) means None.
    """
    if mountinfo_text is None:
        try:
            mountinfo_text = MOUNTINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    fs_type = mount_fs_type(path, mountinfo_text)
    if fs_type is None:
        return None
    if fs_type in NETWORK_FS_TYPES or fs_type.startswith("fuse."):
        return fs_type
    return None


def inotify_max_user_watches() -> int | None:
    """The user's inotify watch limit (fs.inotify.max_user_watches, or the lower limit of
    the user namespace, e.g. a container's), or None when it cannot be read."""
    return watch_limit()


def count_dirs(root: Path, limit: int) -> int:
    """Directories in the tree under ``root``, itself included; stops once past ``limit``.

    Hidden directories count: watchfiles puts an inotify watch on every directory.
    Symlinked directories are not followed (neither watched nor scanned). A directory whose
    link count is 2 has no subdirectories where link counts count them (ext4, xfs, tmpfs):
    it is not listed, so a tree of a million files is counted in a few hundred syscalls.
    Elsewhere (btrfs, many network and FUSE filesystems say 1) every directory is listed.
    """
    count = 0
    stack = [os.fspath(root)]
    while stack and count <= limit:
        top = stack.pop()
        try:
            if os.lstat(top).st_nlink == 2:
                count += 1
                continue
            with os.scandir(top) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
        count += 1
    return count


def choose_mode(
    root: Path,
    poll: str,
    *,
    mountinfo_text: str | None = None,
    max_watches: int | None = None,
) -> tuple[WatchMode, str]:
    """Pick EVENTS or SCAN for ``root`` and say why, from ``poll`` ("auto"|"events"|"scan").

    ``max_watches`` defaults to fs.inotify.max_user_watches; a caller watching several
    folders may pass what is left of it, since the limit is per user, not per folder.
    """
    if poll == "scan":
        return WatchMode.SCAN, "poll = scan in config"
    if poll not in ("auto", "events"):
        raise ValueError(f"poll must be 'auto', 'events' or 'scan', got {poll!r}")
    fs_type = network_fs_type(root, mountinfo_text)
    if poll == "events":
        if fs_type is not None:
            return WatchMode.EVENTS, (
                f"poll = events in config, although network filesystem {fs_type}: "
                "remote writes are seen only by scans"
            )
        return WatchMode.EVENTS, "poll = events in config"
    if fs_type is not None:
        return WatchMode.SCAN, f"network filesystem {fs_type}: inotify cannot see remote writes"
    if max_watches is None:
        max_watches = inotify_max_user_watches()
    if max_watches is not None:
        dirs = count_dirs(root, max_watches)
        if dirs > max_watches:
            # count_dirs stops past the limit, so the true count is only known to be larger.
            return WatchMode.SCAN, (
                f"more than {max_watches} directories exceed "
                f"fs.inotify.max_user_watches={max_watches}"
            )
    return WatchMode.EVENTS, "local filesystem"


def pick_mode(
    root: Path, poll: str, *, max_watches: int | None = None
) -> tuple[WatchMode, str, bool]:
    """``choose_mode`` with what is left of the user's watches (other folders of this process
    hold some), and whether a SCAN answer is worth asking again later: True when only the
    watch limit stood in the way, which may be raised, or the tree may shrink."""
    fs_type = network_fs_type(root)
    budget = max_watches
    if budget is None and poll == "auto" and fs_type is None:  # the only case that asks
        budget = watch_budget()
    mode, reason = choose_mode(root, poll, max_watches=budget)
    retry = mode is WatchMode.SCAN and poll != "scan" and fs_type is None
    return mode, reason, retry
