"""One daemon per ledger: an advisory lock file beside it (``ledger.db.lock``).

Two daemons on one ledger would both post the same batches. ``flock`` is released by the
kernel when the process dies, even by ``kill -9``, so a stale lock never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from jetwatch.errors import LedgerError, LedgerUnavailableError


class LedgerInUseError(LedgerError):
    """Another process holds the ledger's lock."""


class LedgerLock:
    """Context manager holding an exclusive, non-blocking lock on ``<ledger>.lock``."""

    def __init__(self, ledger_path: Path) -> None:
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise LedgerUnavailableError(f"cannot create {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LedgerInUseError(
                f"{self.path.parent / self.path.stem} is used by another jetwatch "
                f"process (pid {holder}); one daemon per ledger"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> LedgerLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
