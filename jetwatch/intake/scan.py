"""Walking a folder tree and stat-ing files: blocking I/O meant to run in a worker thread."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from jetwatch.domain.settle import FileStat, marker_paths
from jetwatch.intake.dirindex import (
    GONE_ERRNOS,
    DirError,
    DirIndex,
    DirSeen,
    report_dir_error,
)
from jetwatch.intake.filters import name_problem
from jetwatch.intake.mounts import WatchMode

log = structlog.get_logger(__name__)

Accept = Callable[[str], bool]
BadName = Callable[[str, str], None]
Pending = list[tuple[str, str]]  # (path, relative path + "/") of directories to list
DirsSeen = list[tuple[str, int]]  # (relative path, inode from the listing) of directories


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


class _Walker:
    """Lists directories for a walk: accepted files into ``chunk``, subdirectories and index
    noted. A full chunk (``chunk_files``) is yielded and a new one begun: files do not pass
    one by one through the generators (a restart's scan has a million)."""

    __slots__ = (
        "accept",
        "chunk",
        "chunk_files",
        "dir_excluded",
        "dirs_seen",
        "index",
        "on_bad_name",
        "on_special",
    )

    def __init__(
        self,
        accept: Accept,
        dir_excluded: Accept,
        on_bad_name: BadName,
        index: DirIndex | None,
        chunk_files: int,
        dirs_seen: DirsSeen | None = None,
        on_special: BadName | None = None,
    ) -> None:
        self.accept = accept
        self.dir_excluded = dir_excluded
        self.on_bad_name = on_bad_name
        self.index = index
        self.chunk_files = chunk_files
        self.chunk: list[FileStat] = []
        self.dirs_seen = dirs_seen
        self.on_special = on_special

    def list_dir(
        self, path: str, rel: str, subdirs: list[tuple[str, str]]
    ) -> Iterator[list[FileStat]]:
        """Add the accepted regular files of one directory to ``chunk``, yielding it each
        time it is full; push its subdirectories."""
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
    ) -> Generator[list[FileStat], None, int]:
        """Add the directory's accepted files to ``chunk``; return how many entries it has."""
        accept, dir_excluded, on_bad_name = self.accept, self.dir_excluded, self.on_bad_name
        chunk, chunk_files = self.chunk, self.chunk_files
        entries = 0
        with os.scandir(path) as listing:
            for entry in listing:
                entries += 1
                relpath = rel + entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not dir_excluded(relpath):
                            self._subdir(entry, relpath, subdirs)
                    elif not accept(relpath):
                        continue
                    elif entry.is_file(follow_symlinks=False):
                        problem = name_problem(entry.name)
                        if problem is not None:
                            on_bad_name(relpath, problem)
                            continue
                        st = entry.stat(follow_symlinks=False)
                        # Replaced by a symlink or a directory between readdir and lstat.
                        if stat.S_ISREG(st.st_mode):
                            chunk.append(FileStat(relpath, st.st_size, st.st_mtime_ns, st.st_ino))
                            if len(chunk) >= chunk_files:
                                self.chunk = []
                                yield chunk
                                chunk = self.chunk
                    elif self.on_special is not None:
                        self._special(entry, relpath, self.on_special)
                except OSError as exc:
                    if exc.errno in GONE_ERRNOS:
                        log.debug("scan_file_vanished", path=relpath)
                    else:
                        log.warning("scan_stat_failed", path=relpath, error=exc.strerror)
        return entries

    def _subdir(
        self, entry: os.DirEntry[str], relpath: str, subdirs: list[tuple[str, str]]
    ) -> None:
        problem = name_problem(entry.name)
        if problem is not None:
            self.on_bad_name(relpath, problem)
            return
        subdirs.append((entry.path, relpath + "/"))
        if self.dirs_seen is not None:
            self.dirs_seen.append((relpath, entry.inode()))

    @staticmethod
    def _special(entry: os.DirEntry[str], relpath: str, on_special: BadName) -> None:
        mode = stat.S_IFLNK if entry.is_symlink() else entry.stat(follow_symlinks=False).st_mode
        on_special(relpath, special_kind(mode))


def special_kind(mode: int) -> str:
    """What a non-regular file is, as people and the ``reason`` label say it."""
    if stat.S_ISLNK(mode):
        return "symlink"  # never followed: it could leave the folder or loop
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "not a regular file"


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
    dirs_seen: DirsSeen | None = None,
    on_special: BadName | None = None,
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
    With ``index``, every directory listed is recorded there (one more stat each); with
    ``dirs_seen``, every subdirectory found is appended to it (no stat: the listing's inode).
    Accepted entries that are no regular file (symlinks, FIFOs, sockets, devices) go to
    ``on_special`` with their kind.
    """
    if chunk_files < 1:
        raise ValueError(f"chunk_files must be >= 1, got {chunk_files}")
    reldir = subdir.strip("/")
    if reldir and (problem := name_problem(reldir)) is not None:
        on_bad_name(reldir, problem)
        return
    start = os.path.join(os.fspath(root), reldir) if reldir else os.fspath(root)
    walker = _Walker(accept, dir_excluded, on_bad_name, index, chunk_files, dirs_seen, on_special)
    pending = [(start, reldir + "/" if reldir else "")]
    yield from _walk(pending, walker, None, on_dir_error, cancelled, True)


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
    on_special: BadName | None = None,
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
    walker = _Walker(accept, dir_excluded, on_bad_name, index, chunk_files, on_special=on_special)
    pending = [(os.path.join(base, d) if d else base, d + "/" if d else "") for d in relist]
    # Known subdirectories were stat-ed above and are listed only if they changed too.
    known = index.dirs
    yield from _walk(pending, walker, known, on_dir_error, cancelled, False)


def _walk(
    pending: list[tuple[str, str]],
    walker: _Walker,
    skip: dict[str, DirSeen] | None,
    on_dir_error: DirError | None,
    cancelled: Callable[[], bool] | None,
    raise_first: bool,
) -> Iterator[list[FileStat]]:
    """List the pending directories and the subdirectories found, except those in ``skip``."""
    subdirs: list[tuple[str, str]] = []
    # Only the starting directory's failure is raised: it is the caller's business
    # (folder down, subdirectory gone); below it, one bad directory never stops a scan.
    is_start = raise_first
    while pending:
        if cancelled is not None and cancelled():
            return
        path, rel = pending.pop()
        try:
            yield from walker.list_dir(path, rel, subdirs)
        except OSError as exc:
            if is_start:
                raise
            report_dir_error(rel.rstrip("/"), exc, on_dir_error)
        is_start = False
        if skip is None:
            pending.extend(subdirs)
        else:
            pending.extend(d for d in subdirs if d[1][:-1] not in skip)
        subdirs.clear()
    if walker.chunk:
        yield walker.chunk


def stat_paths(
    root: Path, relpaths: Iterable[str], on_special: BadName | None = None
) -> tuple[list[FileStat], list[str]]:
    """lstat the given files: (stats of regular files, paths that are gone).

    A path that is now a symlink, a directory or anything but a regular file counts as
    gone (and goes to ``on_special`` with its kind unless it is a directory). A path that
    cannot be stat-ed for another reason (EACCES, EIO, ESTALE) is in neither list, so the
    caller keeps it and tries again later.
    """
    base = os.fspath(root)
    found: list[FileStat] = []
    gone: list[str] = []
    for rel in relpaths:
        try:
            st = os.stat(os.path.join(base, rel), follow_symlinks=False)
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                gone.append(rel)
            else:
                log.warning("stat_failed", path=rel, error=exc.strerror, errno=exc.errno)
            continue
        if stat.S_ISREG(st.st_mode):
            found.append(FileStat(rel, st.st_size, st.st_mtime_ns, st.st_ino))
        else:
            gone.append(rel)
            if on_special is not None and not stat.S_ISDIR(st.st_mode):
                on_special(rel, special_kind(st.st_mode))
    return found, gone


def with_markers(root: Path, stats: list[FileStat], ready_marker: str) -> list[FileStat]:
    """``stats`` with ``marked`` set where a ready marker exists (blocking: a stat per marker)."""
    if not ready_marker:
        return stats
    base = os.fspath(root)
    return [
        st._replace(marked=True) if _has_marker(base, st.relpath, ready_marker) else st
        for st in stats
    ]


def _has_marker(base: str, relpath: str, ready_marker: str) -> bool:
    return any(os.path.exists(os.path.join(base, m)) for m in marker_paths(relpath, ready_marker))


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
