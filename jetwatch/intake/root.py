"""A watched folder's root: its identity (device, inode) and its one owner on this host.

Two daemons watching one folder (with different ledgers) would both deliver every file.
The owner holds an exclusive ``flock`` on the root directory itself: every process on the
host sees it whatever its configuration, sandbox or ledger, the kernel drops it when the
owner dies (even by ``kill -9``), and it follows the directory, not a spelling of its path
(symlinks and bind mounts lead to the same lock). A second daemon finds it taken and keeps
that folder DOWN, naming the owner's pid (from /proc/locks), retrying until it is free.
The lock is host-local by design: several hosts sharing a folder need ledger leases.
Holding the directory open means a share under a running daemon unmounts only lazily.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import stat
from pathlib import Path

import structlog

from jetwatch.intake.scanner import FolderDown

log = structlog.get_logger(__name__)

PROC_LOCKS = Path("/proc/locks")
RootId = tuple[int, int]  # (st_dev, st_ino)


class FolderHeld(FolderDown):
    """Another process owns this folder on this host."""


def lock_holder(root_id: RootId) -> int | None:
    """The pid holding an flock on the directory ``root_id``, from /proc/locks."""
    dev, ino = root_id
    where = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    try:
        lines = PROC_LOCKS.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF" (blocked waiters start "->")
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where:
            return int(fields[4]) if fields[4].isdigit() else None
    return None


class FolderRoot:
    """Stat the root, take its lock and keep it while the root stays the same directory."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._fd: int | None = None
        self._locked_id: RootId | None = None
        self._held_by: int | None = None

    async def open(self) -> RootId:
        """The root's identity, owned by this process; FolderDown when it cannot be."""
        return await asyncio.to_thread(self._open)

    async def check(self, expected: RootId | None) -> None:
        """Raise FolderDown when the root vanished or is another directory now (remount)."""
        if await asyncio.to_thread(self._stat) != expected:
            raise FolderDown(f"root {self.path} was replaced or remounted")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd, self._locked_id = None, None

    def _stat(self) -> RootId:
        try:
            st = os.stat(self.path)
        except FileNotFoundError as exc:
            raise FolderDown(f"root {self.path} is missing") from exc
        except OSError as exc:
            raise FolderDown(f"root {self.path} cannot be read: {exc.strerror}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise FolderDown(f"root {self.path} is not a directory")
        return st.st_dev, st.st_ino

    def _open(self) -> RootId:
        root_id = self._stat()
        if root_id == self._locked_id:
            return root_id
        self.close()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise FolderDown(f"root {self.path} cannot be opened: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._held(root_id) from None
        except OSError as exc:
            # NFS emulates flock with byte-range locks, which a directory cannot take.
            os.close(fd)
            if exc.errno not in (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise FolderDown(f"root {self.path} cannot be locked: {exc.strerror}") from exc
            log.warning(
                "folder_lock_unsupported",
                folder=self.name,
                error=exc.strerror,
                effect="a second jetwatch on this host would not be refused this folder",
            )
            return root_id
        if self._held_by is not None:
            log.warning("folder_owned", folder=self.name, previous_owner_pid=self._held_by)
            # (-1: the previous owner's pid was not known)
        self._fd, self._locked_id, self._held_by = fd, (st.st_dev, st.st_ino), None
        return self._locked_id

    def _held(self, root_id: RootId) -> FolderHeld:
        pid = lock_holder(root_id)
        who = "another process" if pid is None else f"another process (pid {pid})"
        if (pid or -1) != self._held_by:
            log.error(
                "folder_owned_elsewhere",
                folder=self.name,
                root=str(self.path),
                owner_pid=pid,
                effect="not watched nor delivered by this daemon until the owner stops",
            )
        self._held_by = pid or -1
        return FolderHeld(
            f"root {self.path} is owned by {who}, likely a second jetwatch: "
            "one daemon per folder on a host; this one waits until it is free"
        )
