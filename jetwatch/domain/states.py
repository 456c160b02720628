"""The ledger's vocabulary: file and batch states, why a batch is held, and the row values.

Every transition is one committed transaction, written before the action it allows
(``LedgerStore`` in :mod:`jetwatch.domain.store`; backends in :mod:`jetwatch.ledger`)::

    file   STABLE → BATCHED → SUBMITTED → TRANSFERRED → DONE
           STABLE | BATCHED → GONE        vanished (or superseded) before submission
           BATCHED | SUBMITTED → BATCHED   of a retry batch, or → FAILED (fail_batch)
           FAILED: action_done 0 → 1      once its post-action (failed_dir) is done
    batch  OPEN → SUBMITTING → SUBMITTED → COMPLETED
           OPEN | SUBMITTING → HELD;  SUBMITTING | HELD → OPEN (reopen, release_held)
           OPEN | SUBMITTING | SUBMITTED | HELD → FAILED (fail_batch, or every file GONE)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


class HoldReason(StrEnum):
    """Why a batch is HELD; stored as these strings in ``batches.held_reason``.

    The detail (which problem, which folder error) is kept beside it in ``last_error``.
    Target holds are released when the target is usable again, folder holds when the
    folder can be read again: :mod:`jetwatch.pipeline.holds` decides by this value alone.
    """

    PAUSED = "job paused"  # the job (IM: job config) is paused or inactive
    UNUSABLE = "target unusable"  # the target's check found a problem (not manual, ...)
    NOT_FOUND = "job not found (404)"
    FORBIDDEN = "forbidden (403)"  # the client's role may not submit
    FOLDER_UNAVAILABLE = "folder unavailable"  # the watched folder cannot be read
    # Jet would copy the profile's file of that name, not ours: nothing is sent or touched.
    OUTSIDE_PROFILE = "folder outside its job's source profile"
    NOT_GROWING = "job does not follow growing objects"  # a ``growing = true`` folder

    @property
    def is_target(self) -> bool:
        """Released by the target becoming usable (else by the folder coming back)."""
        return self is not HoldReason.FOLDER_UNAVAILABLE

    @classmethod
    def from_stored(cls, text: str | None) -> HoldReason | None:
        """The reason a ledger row holds; rows of jetwatch 0.1 stored free text."""
        if text is None:
            return None
        try:
            return cls(text)
        except ValueError:
            return _legacy_reason(text)


def _legacy_reason(text: str) -> HoldReason:
    # Ledgers of jetwatch 0.1 kept free text (e.g. "folder unavailable: /x: No such file");
    # the schema is unchanged, so such rows are read by what their text began with.
    if text.startswith(HoldReason.FOLDER_UNAVAILABLE.value):
        return HoldReason.FOLDER_UNAVAILABLE
    if text in ("job paused", "job config not active"):
        return HoldReason.PAUSED
    if text.startswith("forbidden"):
        return HoldReason.FORBIDDEN
    if text.startswith("job not found"):
        return HoldReason.NOT_FOUND
    return HoldReason.UNUSABLE


class ActionOutcome(StrEnum):
    """What a post-action did to one file; counted in the per-page summary and logged."""

    KEPT = "kept"
    MOVED = "moved"
    DELETED = "deleted"
    CHANGED = "changed"  # changed since delivery: left for its own delivery
    ALREADY_GONE = "already_gone"


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

    @property
    def key(self) -> FileKey:
        """This version's identity."""
        return FileKey(self.relpath, self.size, self.mtime_ns, self.inode)


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
    held_reason: HoldReason | None
    file_count: int
    total_bytes: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """Files of a failed batch to send again together as attempt ``attempt``, not before then."""

    file_ids: tuple[int, ...]
    attempt: int
    not_before: float
