"""The ledger's vocabulary: states, row values and the ``LedgerStore`` interface of every backend.

Every transition is one committed transaction, written before the action it allows.
``SqliteLedger`` (``ledger_sqlite.py``) is the backend today; PostgreSQL comes later::

    file   STABLE → BATCHED → SUBMITTED → TRANSFERRED → DONE
           STABLE | BATCHED → GONE        vanished (or superseded) before submission
           BATCHED | SUBMITTED → BATCHED   of a retry batch, or → FAILED (fail_batch)
           FAILED: action_done 0 → 1      once its post-action (failed_dir) is done
    batch  OPEN → SUBMITTING → SUBMITTED → COMPLETED
           OPEN | SUBMITTING → HELD;  SUBMITTING | HELD → OPEN (reopen, release_held)
           OPEN | SUBMITTING | SUBMITTED | HELD → FAILED (fail_batch, or every file GONE)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from jetwatch.batch import Queued

_I64_LIMIT = 1 << 63
_U64_SPAN = 1 << 64


class FileState(StrEnum):
    """Where a file is on its way; stored as these readable strings."""

    STABLE = "STABLE"  # settled, waiting for a batch
    BATCHED = "BATCHED"  # in an OPEN/SUBMITTING/HELD batch
    SUBMITTED = "SUBMITTED"  # its batch's delivery was accepted
    TRANSFERRED = "TRANSFERRED"  # delivery succeeded; post-action pending
    DONE = "DONE"  # post-action done
    FAILED = "FAILED"  # given up after max_attempts; failed_dir move may be pending
    GONE = "GONE"  # disappeared (or was superseded) before it was submitted


class BatchState(StrEnum):
    """Where a batch (one delivery attempt) is; stored as these readable strings."""

    OPEN = "OPEN"  # ready to POST once not_before <= now
    SUBMITTING = "SUBMITTING"  # POST about to be sent, or in doubt after a crash
    SUBMITTED = "SUBMITTED"  # delivery_id known, in flight
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"  # this attempt failed; its files were re-batched or given up
    HELD = "HELD"  # job paused, missing or forbidden; see held_reason


class InvalidTransitionError(ValueError):
    """A caller asked for a change the state machine does not allow (a bug, not an outage)."""


@dataclass(frozen=True, slots=True)
class FileKey:
    """Identity of one version of a file: a changed size, mtime or inode is a new version."""

    relpath: str
    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True, slots=True)
class FileRow:
    """One version of one file as the ledger knows it."""

    id: int
    folder: str
    relpath: str
    size: int
    mtime_ns: int
    inode: int
    state: FileState
    batch_id: int | None
    attempts: int
    stable_at: float
    updated_at: float
    error: str | None
    action_done: bool
    action_error: str | None = None  # last post-action failure, cleared when it succeeds


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One delivery attempt of a group of files; a retry is a new batch with ``parent_id``."""

    id: int
    folder: str
    state: BatchState
    job_id: str | None
    delivery_id: str | None
    attempt: int
    parent_id: int | None
    not_before: float
    created_at: float
    submitted_at: float | None
    updated_at: float
    held_reason: str | None
    file_count: int
    total_bytes: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """Files of a failed batch to send again together as attempt ``attempt``, not before then."""

    file_ids: tuple[int, ...]
    attempt: int
    not_before: float


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """Counts by file state and the last scan of one folder."""

    folder: str
    counts: Mapping[str, int]
    mode: str | None
    mode_reason: str | None
    last_scan_at: float | None
    files_seen: int | None
    scan_duration_s: float | None
    oldest_pending_at: float | None  # stable_at of the oldest file not yet delivered


@dataclass(frozen=True, slots=True)
class InFlightBatch:
    """A batch whose delivery was accepted and has not finished."""

    folder: str
    batch_id: int
    delivery_id: str | None
    file_count: int
    total_bytes: int
    attempt: int
    age_s: float


@dataclass(frozen=True, slots=True)
class HeldBatch:
    """A batch waiting for its job to become usable again."""

    folder: str
    batch_id: int
    reason: str | None
    since: float
    file_count: int


@dataclass(frozen=True, slots=True)
class FailedFile:
    """A file given up after its last attempt, or a post-action that keeps failing."""

    folder: str
    relpath: str
    error: str | None
    attempts: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything ``jetwatch status`` shows, read in one consistent transaction."""

    taken_at: float
    ledger_path: str
    ledger_bytes: int
    folders: tuple[FolderStatus, ...]
    in_flight: tuple[InFlightBatch, ...]
    held: tuple[HeldBatch, ...]
    open_batches: int
    recent_failures: tuple[FailedFile, ...]
    action_errors: tuple[FailedFile, ...]


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


class LedgerStore(Protocol):
    """The ledger's whole interface; a backend keeps the state machine and one-transaction rule.

    Every method that changes state commits one transaction before it returns. Times are
    epoch seconds passed in as ``now``; ``folder`` is the folder's configured name.
    """

    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    # intake
    def known_fingerprints(self, folder: str) -> set[int]: ...
    def is_known(self, folder: str, key: FileKey) -> bool: ...
    def add_stable(self, folder: str, keys: Sequence[FileKey], now: float) -> list[int]: ...
    def mark_gone(self, file_ids: Sequence[int], now: float) -> int: ...

    # batching
    def pending_stable(self, folder: str, limit: int | None = None) -> list[FileRow]: ...
    def stable_queue(self, folder: str, limit: int) -> list[Queued]: ...
    def create_batch(
        self,
        folder: str,
        file_ids: Sequence[int],
        now: float,
        *,
        attempt: int = 1,
        parent_id: int | None = None,
        not_before: float | None = None,
    ) -> int: ...
    def open_batches(self, now: float, folder: str | None = None) -> list[BatchRow]: ...
    def next_open_at(self, folder: str | None = None) -> float | None: ...
    def batch(self, batch_id: int) -> BatchRow: ...
    def batch_files(self, batch_id: int) -> list[FileRow]: ...
    def mark_submitting(self, batch_id: int, job_id: str, now: float) -> None: ...
    def mark_submitted(self, batch_id: int, delivery_id: str, now: float) -> None: ...
    def reopen(self, batch_id: int, now: float, not_before: float, error: str | None) -> None: ...
    def mark_held(self, batch_id: int, reason: str, now: float) -> None: ...
    def held_batches(self, folder: str | None = None) -> list[BatchRow]: ...
    def release_held(self, batch_ids: Sequence[int], now: float) -> int: ...
    def in_doubt_batches(self) -> list[BatchRow]: ...
    def submitted_batches(self, folder: str | None = None) -> list[BatchRow]: ...
    def known_delivery_ids(self) -> set[str]: ...
    def complete_batch(self, batch_id: int, now: float) -> None: ...
    def fail_batch(
        self,
        batch_id: int,
        reason: str,
        now: float,
        retries: Sequence[RetryPlan],
        give_up: Sequence[int],
    ) -> list[int]: ...

    # post-actions
    def pending_actions(self, limit: int = 500) -> list[FileRow]: ...
    def mark_done(self, file_ids: Sequence[int], now: float) -> None: ...
    def mark_failed_handled(self, file_ids: Sequence[int], now: float) -> int: ...
    def requeue_failed(self, now: float, folder: str | None = None) -> int: ...
    def set_error(self, file_id: int, error: str, now: float) -> None: ...

    # folder status, status and maintenance
    def record_scan(
        self,
        folder: str,
        *,
        mode: str,
        mode_reason: str,
        finished_at: float,
        files_seen: int,
        duration_s: float,
    ) -> None: ...
    def counts(self, folder: str | None = None) -> dict[str, dict[str, int]]: ...
    def snapshot(self, now: float, recent_failures: int = 20) -> StatusSnapshot: ...
    def prune(self, now: float, retention_s: float, exists: Callable[[str, str], bool]) -> int: ...
    def size_bytes(self) -> int: ...


def ledger_files(path: Path) -> tuple[Path, Path, Path]:
    """The database file and the two WAL companions SQLite keeps beside it."""
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
