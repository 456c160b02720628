"""Walking a folder tree and stat-ing files: blocking I/O meant to run in a worker thread."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from jetwatch.filters import name_problem
from jetwatch.mounts import WatchMode
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
    did not see everything, so its absences prove nothing.
    """

    full: bool
    subdir: str
    files_seen: int
    duration_s: float
    finished_at: float
    mode: WatchMode
    mode_reason: str
    dir_errors: int = 0


def _report_dir_error(reldir: str, exc: OSError, on_dir_error: DirError | None) -> None:
    if exc.errno in _GONE:
        log.debug("scan_dir_vanished", dir=reldir)
        return
    log.warning("scan_dir_unreadable", dir=reldir, error=exc.strerror, errno=exc.errno)
    if on_dir_error is not None:
        on_dir_error(reldir, exc)


def _list_dir(
    path: str,
    rel: str,
    subdirs: list[tuple[str, str]],
    accept: Accept,
    dir_excluded: Accept,
    on_bad_name: BadName,
) -> Iterator[FileStat]:
    """Yield the accepted regular files of one directory; push its subdirectories."""
    with os.scandir(path) as entries:
        for entry in entries:
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
    """
    if chunk_files < 1:
        raise ValueError(f"chunk_files must be >= 1, got {chunk_files}")
    reldir = subdir.strip("/")
    if reldir and (problem := name_problem(reldir)) is not None:
        on_bad_name(reldir, problem)
        return
    start = os.path.join(os.fspath(root), reldir) if reldir else os.fspath(root)
    subdirs: list[tuple[str, str]] = []
    chunk: list[FileStat] = []
    # Only the starting directory's failure is raised: it is the caller's business
    # (folder down, subdirectory gone); below it, one bad directory never stops a scan.
    pending: list[tuple[str, str]] = [(start, reldir + "/" if reldir else "")]
    is_start = True
    while pending:
        if cancelled is not None and cancelled():
            return
        path, rel = pending.pop()
        try:
            for file_stat in _list_dir(path, rel, subdirs, accept, dir_excluded, on_bad_name):
                chunk.append(file_stat)
                if len(chunk) >= chunk_files:
                    yield chunk
                    chunk = []
        except OSError as exc:
            if is_start:
                raise
            _report_dir_error(rel.rstrip("/"), exc, on_dir_error)
        is_start = False
        pending.extend(subdirs)
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


def next_chunk(chunks: Iterator[list[FileStat]]) -> list[FileStat] | None:
    """The next chunk of a scan, None at its end (a plain function for asyncio.to_thread)."""
    return next(chunks, None)


def is_dir(path: str) -> bool:
    """True when ``path`` is a directory itself (not a symlink to one)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def outermost(dirs: Iterable[str]) -> list[str]:
    """Drop directories inside another one of ``dirs``: scanning the parent covers them."""
    kept: list[str] = []
    for reldir in sorted(dirs):
        if not kept or not reldir.startswith(kept[-1] + "/"):
            kept.append(reldir)
    return kept
