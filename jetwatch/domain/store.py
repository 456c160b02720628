"""The ``LedgerStore`` protocol every ledger backend implements, and the file-key fingerprint.

Every method that changes state commits one transaction before it returns, and runs off
the event loop: the protocol is async so that a backend's I/O (SQLite in its own thread,
PostgreSQL over the network) never blocks the daemon.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol, Self

from jetwatch.domain.batching import Queued
from jetwatch.domain.fleet import Fleet, LeaseGrant, Member
from jetwatch.domain.report import StatusSnapshot
from jetwatch.domain.settle import FileStat
from jetwatch.domain.states import BatchRow, FileKey, FileRow, HoldReason, RetryPlan
from jetwatch.domain.versions import EarlierVersion

_I64_LIMIT = 1 << 63
_U64_SPAN = 1 << 64


def to_i64(value: int) -> int:
    """Map an unsigned 64-bit inode onto SQLite's signed INTEGER (NFS/FUSE use the top bit)."""
    return value - _U64_SPAN if value >= _I64_LIMIT else value


def from_i64(value: int) -> int:
    """Inverse of ``to_i64``."""
    return value + _U64_SPAN if value < 0 else value


def key_fingerprint(relpath: str, size: int, mtime_ns: int, inode: int) -> int:
    """Hash of a file key for fast in-memory scan filtering.

    Valid only inside one process: ``str`` hashes are salted per process, so never store
    or compare fingerprints across processes. A collision (about 1 in 2**64 per lookup)
    would only make a scan skip ``add_stable``; use ``is_known`` where exactness matters.
    """
    return hash((relpath, size, mtime_ns, to_i64(inode)))


def unknown_files(files: Sequence[FileStat], known: set[int]) -> list[FileStat]:
    """The files whose ``key_fingerprint`` is not in ``known``, in order.

    ``key_fingerprint`` inlined: a restart's first scan runs this over every file.
    """
    limit, span = _I64_LIMIT, _U64_SPAN
    return [
        f
        for f in files
        if hash((f.relpath, f.size, f.mtime_ns, f.inode - span if f.inode >= limit else f.inode))
        not in known
    ]


class LedgerStore(Protocol):
    """The ledger's whole interface; a backend keeps the state machine and one-transaction rule.

    Every method that changes state commits one transaction before it returns. Times are
    epoch seconds passed in as ``now``; ``folder`` is the folder's configured name.
    ``prune`` calls the blocking ``exists`` off the event loop, one chunk at a time.

    Writes that allow an action (``create_batch``, ``mark_submitting``, ``mark_done``,
    ``mark_failed_handled``) are fenced by the folder's lease: a backend whose leases can
    be lost (PostgreSQL) raises ``LeaseLostError`` and changes nothing when ``member`` no
    longer holds it; ``pending_actions`` lists only folders it holds.
    """

    @property
    def member(self) -> Member: ...

    async def aclose(self) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    # intake
    async def known_fingerprints(self, folder: str) -> set[int]: ...
    async def is_known(self, folder: str, key: FileKey) -> bool: ...
    async def add_stable(self, folder: str, keys: Sequence[FileKey], now: float) -> list[int]: ...
    async def mark_gone(self, file_ids: Sequence[int], now: float) -> int: ...
    async def earlier_versions(
        self, folder: str, file_ids: Sequence[int]
    ) -> list[EarlierVersion]: ...

    # growing folders: the delivery carried the file as it is now (see ledger/files.py)
    async def follow_version(self, file_id: int, key: FileKey, now: float) -> bool: ...

    # batching
    async def stable_queue(self, folder: str, limit: int) -> list[Queued]: ...
    async def create_batch(
        self,
        folder: str,
        file_ids: Sequence[int],
        now: float,
        *,
        attempt: int = 1,
        parent_id: int | None = None,
        not_before: float | None = None,
    ) -> int: ...
    async def open_batches(self, now: float, folder: str | None = None) -> list[BatchRow]: ...
    async def next_open_at(self, folder: str | None = None) -> float | None: ...
    async def batch(self, batch_id: int) -> BatchRow: ...
    async def batch_files(self, batch_id: int) -> list[FileRow]: ...
    async def mark_submitting(self, batch_id: int, job_id: str, now: float) -> None: ...
    async def mark_submitted(self, batch_id: int, delivery_id: str, now: float) -> None: ...
    async def reopen(
        self, batch_id: int, now: float, not_before: float, error: str | None
    ) -> None: ...
    async def mark_held(
        self, batch_id: int, reason: HoldReason, now: float, detail: str | None = None
    ) -> None: ...
    async def held_batches(self, folder: str | None = None) -> list[BatchRow]: ...
    async def release_held(self, batch_ids: Sequence[int], now: float) -> int: ...
    async def in_doubt_batches(self) -> list[BatchRow]: ...
    async def submitted_batches(self, folder: str | None = None) -> list[BatchRow]: ...
    async def known_delivery_ids(self) -> set[str]: ...
    async def complete_batch(self, batch_id: int, now: float) -> None: ...
    async def fail_batch(
        self,
        batch_id: int,
        reason: str,
        now: float,
        retries: Sequence[RetryPlan],
        give_up: Sequence[int],
    ) -> list[int]: ...

    # post-actions
    async def pending_actions(self, limit: int = 500) -> list[FileRow]: ...
    async def mark_done(self, file_ids: Sequence[int], now: float) -> None: ...
    async def mark_failed_handled(self, file_ids: Sequence[int], now: float) -> int: ...
    async def requeue_failed(self, now: float, folder: str | None = None) -> int: ...
    async def set_error(self, file_id: int, error: str, now: float) -> None: ...

    # folder status, status and maintenance
    async def record_scan(
        self,
        folder: str,
        *,
        mode: str,
        mode_reason: str,
        finished_at: float,
        files_seen: int,
        duration_s: float,
    ) -> None: ...
    async def counts(self, folder: str | None = None) -> dict[str, dict[str, int]]: ...
    async def snapshot(self, now: float, recent_failures: int = 20) -> StatusSnapshot: ...
    async def prune(
        self, now: float, retention_s: float, exists: Callable[[str, str], bool]
    ) -> int: ...
    async def size_bytes(self) -> int: ...

    # folder leases (see jetwatch.domain.fleet)
    async def lease_round(
        self, folders: Sequence[str], lease_s: float, release: Sequence[str] = ()
    ) -> LeaseGrant: ...
    async def leave(self) -> None: ...
    async def fleet(self) -> Fleet: ...
