"""What ``jetwatch status`` shows: counts, scans, batches in flight or held, failed files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
    reason: str | None  # the HoldReason, with its detail when there is one
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
