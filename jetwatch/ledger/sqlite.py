"""The SQLite ledger: one file (WAL, synchronous=FULL), behind the async ``LedgerStore`` protocol.

:class:`SqliteLedger` composes the parts: :class:`~jetwatch.ledger.files.FileRecords` and
:class:`~jetwatch.ledger.batches.BatchRecords` (the transitions), :mod:`~jetwatch.ledger.report`
and :mod:`~jetwatch.ledger.prune`. Every call runs in the connection's own thread
(:meth:`Db.call <jetwatch.ledger.db.Db.call>`): the event loop never waits on SQLite. Bulk
reads (a million fingerprints at start-up) use a second, read-only connection and thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import structlog

from jetwatch.domain.batching import Queued
from jetwatch.domain.fleet import Fleet, LeaseGrant, Member
from jetwatch.domain.report import StatusSnapshot
from jetwatch.domain.states import BatchRow, FileKey, FileRow, HoldReason, RetryPlan
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.versions import EarlierVersion
from jetwatch.errors import LedgerError, LedgerUnavailableError
from jetwatch.ledger import prune as pruning
from jetwatch.ledger import report
from jetwatch.ledger.aside import move_aside
from jetwatch.ledger.batches import BatchRecords
from jetwatch.ledger.db import Db
from jetwatch.ledger.files import FileRecords
from jetwatch.ledger.migrations import SCHEMA_VERSION
from jetwatch.metrics import LEDGER_BYTES

log = structlog.get_logger(__name__)


class SqliteLedger:
    """The ledger in one SQLite file; implements ``LedgerStore``. Open with :meth:`open`."""

    def __init__(
        self,
        db: Db,
        reader: Db | None = None,
        member: Member | None = None,
        looks: Db | None = None,
    ) -> None:
        self._member = member or Member.this_process()
        self._db = db
        self._reader = reader  # long reads: status, the start-up fingerprints
        self._files = FileRecords(db, reader)
        self._batches = BatchRecords(db)
        # The reads every pipeline round makes have a connection and thread of their own:
        # the writer's thread is the busiest of a burst, and status must not queue behind
        # them either. Under WAL a read sees every commit made before it began, and callers
        # await their writes' commits before they read.
        self._looks = looks or db
        self._look_files = FileRecords(self._looks)
        self._look_batches = BatchRecords(self._looks)
        self._closed = False

    @classmethod
    async def open(cls, path: Path, member: Member | None = None) -> SqliteLedger:
        """Open or create the ledger; refuses (never replaces) a damaged or foreign file."""
        db, reader, looks = await asyncio.to_thread(_connect_new, path)
        return cls(db, reader, member, looks)

    @classmethod
    async def open_readonly(cls, path: Path) -> SqliteLedger:
        """Open an existing ledger for reading only, e.g. for status while the daemon runs."""
        return cls(await asyncio.to_thread(_connect_existing, path))

    @staticmethod
    def move_aside(path: Path, now: float) -> Path:
        """Rename the ledger and its -wal/-shm to ``<path>.corrupt-<time>``; returns that path."""
        return move_aside(path, now)

    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def member(self) -> Member:
        return self._member

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for other in (self._reader, self._looks):
                if other is not None and other is not self._db:
                    await other.call(other.close)
                    other.stop_worker()
        finally:
            await self._db.call(self._db.close)
            self._db.stop_worker()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # intake

    async def known_fingerprints(self, folder: str) -> set[int]:
        return await (self._reader or self._db).call(self._files.known_fingerprints, folder)

    async def is_known(self, folder: str, key: FileKey) -> bool:
        return await self._db.call(self._files.is_known, folder, key)

    async def add_stable(self, folder: str, keys: Sequence[FileKey], now: float) -> list[int]:
        return await self._db.call(self._files.add_stable, folder, keys, now)

    async def mark_gone(self, file_ids: Sequence[int], now: float) -> int:
        return await self._db.call(self._files.mark_gone, file_ids, now)

    async def earlier_versions(self, folder: str, file_ids: Sequence[int]) -> list[EarlierVersion]:
        return await self._looks.call(self._look_files.earlier_versions, folder, file_ids)

    async def follow_version(self, file_id: int, key: FileKey, now: float) -> bool:
        return await self._db.call(self._files.follow_version, file_id, key, now)

    # batching

    async def stable_queue(self, folder: str, limit: int) -> list[Queued]:
        return await self._looks.call(self._look_batches.stable_queue, folder, limit)

    async def create_batch(
        self,
        folder: str,
        file_ids: Sequence[int],
        now: float,
        *,
        attempt: int = 1,
        parent_id: int | None = None,
        not_before: float | None = None,
    ) -> int:
        create = self._batches.create_batch
        return await self._db.call(
            create, folder, file_ids, now, attempt=attempt, parent_id=parent_id,
            not_before=not_before,
        )  # fmt: skip

    async def open_batches(self, now: float, folder: str | None = None) -> list[BatchRow]:
        return await self._db.call(self._batches.open_batches, now, folder)

    async def next_open_at(self, folder: str | None = None) -> float | None:
        return await self._db.call(self._batches.next_open_at, folder)

    async def batch(self, batch_id: int) -> BatchRow:
        return await self._db.call(self._batches.batch, batch_id)

    async def batch_files(self, batch_id: int) -> list[FileRow]:
        return await self._looks.call(self._look_batches.batch_files, batch_id)

    async def mark_submitting(self, batch_id: int, job_id: str, now: float) -> None:
        await self._db.call(self._batches.mark_submitting, batch_id, job_id, now)

    async def mark_submitted(self, batch_id: int, delivery_id: str, now: float) -> None:
        await self._db.call(self._batches.mark_submitted, batch_id, delivery_id, now)

    async def reopen(self, batch_id: int, now: float, not_before: float, error: str | None) -> None:
        await self._db.call(self._batches.reopen, batch_id, now, not_before, error)

    async def mark_held(
        self, batch_id: int, reason: HoldReason, now: float, detail: str | None = None
    ) -> None:
        await self._db.call(self._batches.mark_held, batch_id, reason, now, detail)

    async def held_batches(self, folder: str | None = None) -> list[BatchRow]:
        return await self._db.call(self._batches.held_batches, folder)

    async def release_held(self, batch_ids: Sequence[int], now: float) -> int:
        return await self._db.call(self._batches.release_held, batch_ids, now)

    async def in_doubt_batches(self) -> list[BatchRow]:
        return await self._db.call(self._batches.in_doubt_batches)

    async def submitted_batches(self, folder: str | None = None) -> list[BatchRow]:
        return await self._db.call(self._batches.submitted_batches, folder)

    async def known_delivery_ids(self) -> set[str]:
        return await self._db.call(self._batches.known_delivery_ids)

    async def complete_batch(self, batch_id: int, now: float) -> None:
        await self._db.call(self._batches.complete_batch, batch_id, now)

    async def fail_batch(
        self,
        batch_id: int,
        reason: str,
        now: float,
        retries: Sequence[RetryPlan],
        give_up: Sequence[int],
    ) -> list[int]:
        fail = self._batches.fail_batch
        return await self._db.call(fail, batch_id, reason, now, retries, give_up)

    # post-actions

    async def pending_actions(self, limit: int = 500) -> list[FileRow]:
        return await self._looks.call(self._look_files.pending_actions, limit)

    async def mark_done(self, file_ids: Sequence[int], now: float) -> None:
        await self._db.call(self._files.mark_done, file_ids, now)

    async def mark_failed_handled(self, file_ids: Sequence[int], now: float) -> int:
        return await self._db.call(self._files.mark_failed_handled, file_ids, now)

    async def requeue_failed(self, now: float, folder: str | None = None) -> int:
        return await self._db.call(self._files.requeue_failed, now, folder)

    async def set_error(self, file_id: int, error: str, now: float) -> None:
        await self._db.call(self._files.set_error, file_id, error, now)

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
    ) -> None:
        await self._db.call(
            report.record_scan, self._db, folder, mode=mode, mode_reason=mode_reason,
            finished_at=finished_at, files_seen=files_seen, duration_s=duration_s,
        )  # fmt: skip

    async def counts(self, folder: str | None = None) -> dict[str, dict[str, int]]:
        # The reader's own thread: status never waits behind a burst's queue of writes.
        db = self._reader or self._db
        return await db.call(report.counts, db, folder)

    async def snapshot(self, now: float, recent_failures: int = 20) -> StatusSnapshot:
        db = self._reader or self._db  # see counts
        return await db.call(report.snapshot, db, now, recent_failures)

    async def prune(
        self, now: float, retention_s: float, exists: Callable[[str, str], bool]
    ) -> int:
        """Delete finished rows older than retention_s whose file is gone; see ``prune``."""
        return await pruning.prune(self._db, now, retention_s, exists)

    async def size_bytes(self) -> int:
        """Bytes of the database file and its WAL."""
        size = await self._db.call(self._db.size_bytes)
        LEDGER_BYTES.set(size)
        return size

    # folder leases: one host, and the ledger lock already makes this daemon the only one

    async def lease_round(
        self, folders: Sequence[str], lease_s: float, release: Sequence[str] = ()
    ) -> LeaseGrant:
        """Every folder but those released, for ever: nobody else can use this ledger."""
        return LeaseGrant(frozenset(folders) - frozenset(release), None)

    async def leave(self) -> None:
        return None

    async def fleet(self) -> Fleet:
        return Fleet(shared=False)


def _connect_new(path: Path) -> tuple[Db, Db, Db]:
    """The main connection of a ledger (created or migrated if need be) and two readers."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerUnavailableError(f"cannot create the ledger's folder: {exc}") from exc
    db = Db.connect(path, read_only=False)
    opened: list[Db] = []
    try:
        opened.extend((db.reader(), db.reader()))
    except BaseException:
        for each in (*opened, db):
            each.close()
        raise
    log.info("ledger_opened", path=str(path), version=SCHEMA_VERSION)
    return db, opened[0], opened[1]


def _connect_existing(path: Path) -> Db:
    if not path.is_file():
        raise LedgerError(f"no ledger at {path}: check ledger_path, or start jetwatch once")
    return Db.connect(path, read_only=True)


if TYPE_CHECKING:

    def _conforms(ledger: SqliteLedger) -> LedgerStore:  # mypy proves the Protocol is met
        return ledger
