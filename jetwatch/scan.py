"""Walking a folder tree and stat-ing files: blocking I/O meant to run in a worker thread."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from jetwatch.filters import name_problem
from jetwatch.mounts import MOUNTINFO, WatchMode, mount_fs_type
from jetwatch.settle import FileStat

log = structlog.get_logger(__name__)

Accept = Callable[[str], bool]
BadName = Callable[[str, str], None]
DirError = Callable[[str, OSError], None]

# Errors that mean "it is gone", not "we could not look".
_GONE = (errno.ENOENT, errno.ENOTDIR)


@dataclass(frozen=True, slots=True)
class ScanReport:
    """A finished scan; ``finished_at`` is wall-clock epoch seconds.

    ``dir_errors`` counts subdirectories that could not be read: a full scan with errors
    did not see everything, so its absences prove nothing. An ``incremental`` pass has
    ``full`` False and ``subdir`` "": it covered the whole tree, but only what changed.
    """

    full: bool
    subdir: str
    files_seen: int
    duration_s: float
    finished_at: float
    mode: WatchMode
    mode_reason: str
    dir_errors: int = 0
    incremental: bool = False  # only directories whose times changed were listed


def _report_dir_error(reldir: str, exc: OSError, on_dir_error: DirError | None) -> None:
    if exc.errno in _GONE:
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
                st = _stat_dir(base, reldir)
            except OSError as exc:
                if not reldir:
                    raise
                if exc.errno in _GONE:
                    vanished.append(reldir)
                else:
                    seen.recheck = True
                    _report_dir_error(reldir, exc, on_dir_error)
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


def _stat_dir(base: str, reldir: str) -> os.stat_result:
    """stat of a directory of the tree (the root may be a symlink, the others may not)."""
    st = os.stat(os.path.join(base, reldir), follow_symlinks=False) if reldir else os.stat(base)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", reldir or base)
    return st


class _Walker:
    """Lists directories for a walk: accepted files out, subdirectories and index noted."""

    __slots__ = ("accept", "dir_excluded", "index", "on_bad_name")

    def __init__(
        self, accept: Accept, dir_excluded: Accept, on_bad_name: BadName, index: DirIndex | None
    ) -> None:
        self.accept = accept
        self.dir_excluded = dir_excluded
        self.on_bad_name = on_bad_name
        self.index = index

    def list_dir(self, path: str, rel: str, subdirs: list[tuple[str, str]]) -> Iterator[FileStat]:
        """Yield the accepted regular files of one directory; push its subdirectories."""
        index = self.index
        if index is None:
            yield from self._entries(path, rel, subdirs)
            return
        reldir = rel.rstrip("/")
        try:
            # Times before the listing: a change during or after it shows at the next pass.
            st, seen_ns = os.stat(path), time.time_ns()
            entries = yield from self._entries(path, rel, subdirs)
        except OSError:
            index.record(reldir, None, 0, 0)  # looked at again next pass
            raise
        index.record(reldir, st, seen_ns, entries)

    def _entries(
        self, path: str, rel: str, subdirs: list[tuple[str, str]]
    ) -> Generator[FileStat, None, int]:
        """Yield the directory's accepted files; return how many entries it has."""
        accept, dir_excluded, on_bad_name = self.accept, self.dir_excluded, self.on_bad_name
        entries = 0
        with os.scandir(path) as listing:
            for entry in listing:
                entries += 1
                relpath = rel + entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if dir_excluded(relpath):
                            continue
                        problem = name_problem(entry.name)
                        if problem is None:
                            subdirs.append((entry.path, relpath + "/"))
                        else:
                            on_bad_name(relpath, problem)
                    elif entry.is_file(follow_symlinks=False) and accept(relpath):
                        problem = name_problem(entry.name)
                        if problem is not None:
                            on_bad_name(relpath, problem)
                            continue
                        st = entry.stat(follow_symlinks=False)
                        # Replaced by a symlink or a directory between readdir and lstat.
                        if stat.S_ISREG(st.st_mode):
                            yield FileStat(relpath, st.st_size, st.st_mtime_ns, st.st_ino)
                except OSError as exc:
                    if exc.errno in _GONE:
                        log.debug("scan_file_vanished", path=relpath)
                    else:
                        log.warning("scan_stat_failed", path=relpath, error=exc.strerror)
        return entries


def scan_tree(
    root: Path,
    *,
    accept: Accept,
    dir_excluded: Accept,
    on_bad_name: BadName,
    subdir: str = "",
    chunk_files: int = 2000,
    on_dir_error: DirError | None = None,
    cancelled: Callable[[], bool] | None = None,
    index: DirIndex | None = None,
) -> Iterator[list[FileStat]]:
    """Yield the tree's accepted regular files in chunks of up to ``chunk_files`` FileStats.

    Walks ``root/subdir`` (``subdir`` "" = the whole tree) with os.scandir, iteratively,
    one lstat per accepted file and none for directories. Paths are relative to ``root``,
    "/"-separated. Symlinks (to files or directories) are skipped: following them could
    leave the folder or loop, and the delivery would name a path the job cannot see.
    Excluded directories are pruned; bad names (``name_problem``) go to ``on_bad_name``
    and are not yielded (a bad directory name skips its subtree). A file or directory
    that vanishes mid-scan is skipped; an unreadable subdirectory is logged, passed to
    ``on_dir_error`` and skipped. Only a failure to open the starting directory raises
    (FileNotFoundError when it is missing, PermissionError, NotADirectoryError), at the
    first ``next()``. ``cancelled`` is checked once per directory: a scan running in a
    worker thread stops soon after its consumer went away, even if it finds no files.
    With ``index``, every directory listed is recorded there (one more stat each).
    """
    if chunk_files < 1:
        raise ValueError(f"chunk_files must be >= 1, got {chunk_files}")
    reldir = subdir.strip("/")
    if reldir and (problem := name_problem(reldir)) is not None:
        on_bad_name(reldir, problem)
        return
    start = os.path.join(os.fspath(root), reldir) if reldir else os.fspath(root)
    walker = _Walker(accept, dir_excluded, on_bad_name, index)
    pending = [(start, reldir + "/" if reldir else "")]
    yield from _walk(pending, walker, None, chunk_files, on_dir_error, cancelled, True)


def scan_changed(
    root: Path,
    index: DirIndex,
    *,
    accept: Accept,
    dir_excluded: Accept,
    on_bad_name: BadName,
    chunk_files: int = 2000,
    on_dir_error: DirError | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Iterator[list[FileStat]]:
    """Like ``scan_tree`` of the whole tree, but lists only directories that changed.

    Stats every directory of ``index`` and lists those whose times changed (or that were
    due a second look); a subdirectory the index does not know yet (new, or renamed in) is
    walked whole. ``index`` is updated as it goes. Raises OSError at the first ``next()``
    when the root cannot be stat-ed; other failures are skipped as in ``scan_tree``.
    """
    if chunk_files < 1:
        raise ValueError(f"chunk_files must be >= 1, got {chunk_files}")
    base = os.fspath(root)
    relist = index.changed(root, on_dir_error)
    walker = _Walker(accept, dir_excluded, on_bad_name, index)
    pending = [(os.path.join(base, d) if d else base, d + "/" if d else "") for d in relist]
    # Known subdirectories were stat-ed above and are listed only if they changed too.
    known = index.dirs
    yield from _walk(pending, walker, known, chunk_files, on_dir_error, cancelled, False)


def _walk(
    pending: list[tuple[str, str]],
    walker: _Walker,
    skip: dict[str, DirSeen] | None,
    chunk_files: int,
    on_dir_error: DirError | None,
    cancelled: Callable[[], bool] | None,
    raise_first: bool,
) -> Iterator[list[FileStat]]:
    """List the pending directories and the subdirectories found, except those in ``skip``."""
    subdirs: list[tuple[str, str]] = []
    chunk: list[FileStat] = []
    # Only the starting directory's failure is raised: it is the caller's business
    # (folder down, subdirectory gone); below it, one bad directory never stops a scan.
    is_start = raise_first
    while pending:
        if cancelled is not None and cancelled():
            return
        path, rel = pending.pop()
        try:
            for file_stat in walker.list_dir(path, rel, subdirs):
                chunk.append(file_stat)
                if len(chunk) >= chunk_files:
                    yield chunk
                    chunk = []
        except OSError as exc:
            if is_start:
                raise
            _report_dir_error(rel.rstrip("/"), exc, on_dir_error)
        is_start = False
        if skip is None:
            pending.extend(subdirs)
        else:
            pending.extend(d for d in subdirs if d[1][:-1] not in skip)
        subdirs.clear()
    if chunk:
        yield chunk


def stat_paths(root: Path, relpaths: Iterable[str]) -> tuple[list[FileStat], list[str]]:
    """lstat the given files: (stats of regular files, paths that are gone).

    A path that is now a symlink, a directory or anything but a regular file counts as
    gone. A path that cannot be stat-ed for another reason (EACCES, EIO, ESTALE) is in
    neither list, so the caller keeps it and tries again later.
    """
    base = os.fspath(root)
    found: list[FileStat] = []
    gone: list[str] = []
    for rel in relpaths:
        try:
            st = os.stat(os.path.join(base, rel), follow_symlinks=False)
        except OSError as exc:
            if exc.errno in _GONE:
                gone.append(rel)
            else:
                log.warning("stat_failed", path=rel, error=exc.strerror, errno=exc.errno)
            continue
        if stat.S_ISREG(st.st_mode):
            found.append(FileStat(rel, st.st_size, st.st_mtime_ns, st.st_ino))
        else:
            gone.append(rel)
    return found, gone


def next_chunk(
    chunks: Iterator[list[FileStat]], keep: Callable[[list[FileStat]], list[FileStat]] | None = None
) -> tuple[int, list[FileStat]] | None:
    """(files found, those ``keep`` kept) of the scan's next chunk; None at its end.

    A plain function for asyncio.to_thread: ``keep`` runs in the worker thread too.
    """
    chunk = next(chunks, None)
    if chunk is None:
        return None
    return len(chunk), chunk if keep is None else keep(chunk)


def is_dir(path: str) -> bool:
    """True when ``path`` is a directory itself (not a symlink to one)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def under_excluded(rel: str, dir_excluded: Accept) -> bool:
    """True when ``rel`` or a directory on its way is excluded (a scan prunes top-down,
    so only paths that did not come from a scan need this)."""
    end = rel.find("/")
    while end != -1:
        if dir_excluded(rel[:end]):
            return True
        end = rel.find("/", end + 1)
    return dir_excluded(rel)


def outermost(dirs: Iterable[str]) -> list[str]:
    """Drop directories inside another one of ``dirs``: scanning the parent covers them."""
    kept: list[str] = []
    for reldir in sorted(dirs):
        if not kept or not reldir.startswith(kept[-1] + "/"):
            kept.append(reldir)
    return kept


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
