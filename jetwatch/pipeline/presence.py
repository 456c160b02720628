"""Which files of a batch are still on disk as they settled: blocking stats, run off the loop."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from jetwatch.config.settings import FolderSettings
from jetwatch.domain.states import FileRow, FileState
from jetwatch.domain.target import SubmitObject


class Presence(NamedTuple):
    """A batch's files on disk: unchanged, gone (or changed), or why none can be judged."""

    present: list[FileRow]
    gone: list[FileRow]
    problem: str | None = None


def live_files(files: Sequence[FileRow]) -> list[FileRow]:
    """The rows of a batch that are still to be (or were) sent: not GONE."""
    return [f for f in files if f.state != FileState.GONE]


def submit_objects(folder: FolderSettings, files: Sequence[FileRow]) -> list[SubmitObject]:
    """What a target is given of a batch: relative path, local path, size."""
    base = os.fspath(folder.path)
    return [SubmitObject(f.relpath, os.path.join(base, f.relpath), f.size) for f in files]


def folder_problem(root: Path) -> str | None:
    """Why the folder cannot be looked into now (missing, not a directory), or None."""
    try:
        st = os.stat(root)
    except OSError as exc:
        return f"{root}: {exc.strerror or exc}"
    return None if stat.S_ISDIR(st.st_mode) else f"{root}: not a directory"


def check_files(root: Path, files: Sequence[FileRow], *, growing: bool = False) -> Presence:
    """Stat each file under ``root`` (blocking: call it in a worker thread).

    A missing or unreadable folder (a share that dropped) proves nothing about its files;
    neither does an EACCES/EIO/ESTALE on one file: then nothing is judged. In a ``growing``
    folder a file that grew since it was handed over is still the same one (same inode,
    not shorter): its job follows it until it is idle.
    """
    problem = folder_problem(root)
    if problem is not None:
        return Presence([], [], problem)
    present: list[FileRow] = []
    gone: list[FileRow] = []
    base = os.fspath(root)  # os.path.join, not a Path per file
    for row in files:
        try:
            st = os.stat(os.path.join(base, row.relpath), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            gone.append(row)
            continue
        except OSError as exc:  # EACCES, EIO, ESTALE: unknown, not gone
            return Presence([], [], f"{row.relpath}: {exc.strerror or exc}")
        same = (st.st_size, st.st_mtime_ns, st.st_ino) == (row.size, row.mtime_ns, row.inode)
        grew = growing and st.st_ino == row.inode and st.st_size >= row.size
        (present if (same or grew) and stat.S_ISREG(st.st_mode) else gone).append(row)
    return Presence(present, gone)
