"""The directories of a tree with their times, so a scan pass lists only those that changed."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from jetwatch.intake.mounts import MOUNTINFO, mount_fs_type

log = structlog.get_logger(__name__)

DirError = Callable[[str, OSError], None]
# Errors that mean "it is gone", not "we could not look".
GONE_ERRNOS = (errno.ENOENT, errno.ENOTDIR)


def report_dir_error(reldir: str, exc: OSError, on_dir_error: DirError | None) -> None:
    if exc.errno in GONE_ERRNOS:
        log.debug("scan_dir_vanished", dir=reldir)
        return
    log.warning("scan_dir_unreadable", dir=reldir, error=exc.strerror, errno=exc.errno)
    if on_dir_error is not None:
        on_dir_error(reldir, exc)


# A directory changed this close to the moment it was looked at (either way: a share's clock
# may run ahead) is listed again next pass: a change in the same timestamp tick as our look
# would leave its times as we recorded them. Generous, since it costs one listing.
RACY_NS = 5_000_000_000


@dataclass(slots=True)
class DirSeen:
    """One directory as the last pass left it: its times before the listing, entry count."""

    signature: tuple[int, int, int] | None  # (mtime_ns, ctime_ns, inode); None: unreadable
    entries: int
    recheck: bool  # list it again next pass, whatever its times say


class DirIndex:
    """The directories of a tree with their times, so a pass can list only those that changed.

    Creating, renaming or deleting an entry changes its directory's mtime and ctime (and
    ctime cannot be set back, unlike mtime after ``rsync -t``); rewriting a file in place
    changes neither, so callers still walk the whole tree now and then. Comparing such a
    walk with the index (``audit``) shows a filesystem whose directory times cannot be
    trusted. Past ``max_dirs`` directories the index gives up (``overflow``).
    """

    __slots__ = ("dirs", "max_dirs", "overflow")

    def __init__(self, max_dirs: int = 100_000) -> None:
        self.dirs: dict[str, DirSeen] = {}
        self.max_dirs = max_dirs
        self.overflow = False

    def record(self, reldir: str, st: os.stat_result | None, seen_ns: int, entries: int) -> None:
        """Note a directory just listed (``st`` taken before its listing, None if it failed)."""
        if reldir not in self.dirs and len(self.dirs) >= self.max_dirs:
            self.overflow = True
            return
        if st is None:
            self.dirs[reldir] = DirSeen(None, entries, recheck=True)
            return
        racy = abs(seen_ns - max(st.st_mtime_ns, st.st_ctime_ns)) < RACY_NS
        self.dirs[reldir] = DirSeen((st.st_mtime_ns, st.st_ctime_ns, st.st_ino), entries, racy)

    def changed(self, root: Path, on_dir_error: DirError | None = None) -> list[str]:
        """Stat every known directory: those to list again; vanished ones are forgotten.

        Raises OSError when the root itself cannot be stat-ed or is no directory.
        """
        base = os.fspath(root)
        relist: list[str] = []
        vanished: list[str] = []
        for reldir, seen in self.dirs.items():
            try:
                st = stat_dir(base, reldir)
            except OSError as exc:
                if not reldir:
                    raise
                if exc.errno in GONE_ERRNOS:
                    vanished.append(reldir)
                else:
                    seen.recheck = True
                    report_dir_error(reldir, exc, on_dir_error)
                continue
            if seen.recheck or (st.st_mtime_ns, st.st_ctime_ns, st.st_ino) != seen.signature:
                relist.append(reldir)
        if vanished:
            self._forget(vanished)
        return relist

    def _forget(self, vanished: list[str]) -> None:
        gone, below = set(vanished), tuple(v + "/" for v in vanished)
        self.dirs = {
            k: v for k, v in self.dirs.items() if k not in gone and not k.startswith(below)
        }

    def audit(self, walked: DirIndex) -> str | None:
        """A directory whose entry count changed while its times did not, else None."""
        for reldir, now in walked.dirs.items():
            before = self.dirs.get(reldir)
            if (
                before is not None
                and not before.recheck
                and before.signature == now.signature
                and before.entries != now.entries
            ):
                return reldir
        return None


def stat_dir(base: str, reldir: str) -> os.stat_result:
    """stat of a directory of the tree (the root may be a symlink, the others may not)."""
    st = os.stat(os.path.join(base, reldir), follow_symlinks=False) if reldir else os.stat(base)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", reldir or base)
    return st


def dir_times_untrusted(root: Path) -> str | None:
    """Why directory times on ``root``'s filesystem cannot say what changed, or None."""
    try:
        fs_type = mount_fs_type(root, MOUNTINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None  # not Linux: the audit of each full walk still guards
    if fs_type is not None and fs_type.startswith("fuse"):
        # A FUSE daemon decides what a directory's times say (object stores: often nothing).
        return f"directory times on {fs_type} are up to its FUSE daemon"
    return None
