"""The PostgreSQL ledger: the same state machine as SQLite, shared by every daemon of a fleet.

:class:`PostgresLedger` composes :class:`~jetwatch.ledger.postgres.files.PgFiles`,
:class:`~jetwatch.ledger.postgres.batches.PgBatches`, the status queries and the folder
leases. Two pools: one for the stages, one of a single connection for the lease rounds, so
a busy stage can never delay a renewal until the lease lapses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

import structlog

from jetwatch.domain.batching import Queued
from jetwatch.domain.fleet import Fleet, LeaseGrant, Member, renew_interval_s
from jetwatch.domain.report import StatusSnapshot
from jetwatch.domain.states import BatchRow, FileKey, FileRow, HoldReason, RetryPlan
from jetwatch.domain.store import LedgerStore
from jetwatch.domain.versions import EarlierVersion
from jetwatch.errors import LedgerUnavailableError
from jetwatch.ledger.postgres import leases, report
from jetwatch.ledger.postgres.batches import PgBatches
from jetwatch.ledger.postgres.conn import Pg
from jetwatch.ledger.postgres.files import PgFiles
from jetwatch.ledger.postgres.schema import SCHEMA_VERSION
from jetwatch.metrics import LEDGER_BYTES

log = structlog.get_logger(__name__)

STAGE_POOL_SIZE = 6
STAGE_TIMEOUT_S = 10.0


class PostgresLedger:
    """The ledger in a PostgreSQL database; implements ``LedgerStore``. Open with :meth:`open`."""

    def __init__(self, pg: Pg, lease_pg: Pg | None, member: Member) -> None:
        self._pg = pg
        self._lease_pg = lease_pg or pg
        self._own_lease_pool = lease_pg is not None
        self._member = member
        self._files = PgFiles(pg, member.token)
        self._batches = PgBatches(pg, member.token)
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        password: str | None = None,
        *,
        member: Member | None = None,
        readonly: bool = False,
    ) -> PostgresLedger:
        """Connect, then create or upgrade the schema (``readonly``: only check it)."""
        pg = await Pg.open(
            url, password, max_size=2 if readonly else STAGE_POOL_SIZE, name="ledger",
            timeout_s=STAGE_TIMEOUT_S,
        )  # fmt: skip
        lease_pg: Pg | None = None
        try:
            if readonly:
                await pg.check_current()
            else:
                await pg.migrate()
                lease_pg = await Pg.open(
                    url, password, max_size=1, name="leases", timeout_s=STAGE_TIMEOUT_S
                )
        except BaseException:
            await pg.close()
            raise
        log.info("ledger_opened", url=pg.where, version=SCHEMA_VERSION)
        return cls(pg, lease_pg, member or Member.this_process())

    @property
    def where(self) -> str:
        """The database's URL without its password."""
        return self._pg.where

    @property
    def member(self) -> Member:
        return self._member

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._own_lease_pool:
                await self._lease_pg.close()
        finally:
            await self._pg.close()

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
        return await self._files.known_fingerprints(folder)

    async def is_known(self, folder: str, key: FileKey) -> bool:
        return await self._files.is_known(folder, key)

    async def add_stable(self, folder: str, keys: Sequence[FileKey], now: float) -> list[int]:
        return await self._files.add_stable(folder, keys, now)

    async def mark_gone(self, file_ids: Sequence[int], now: float) -> int:
        return await self._files.mark_gone(file_ids, now)

    async def earlier_versions(self, folder: str, file_ids: Sequence[int]) -> list[EarlierVersion]:
        return await self._files.earlier_versions(folder, file_ids)

    async def follow_version(self, file_id: int, key: FileKey, now: float) -> bool:
        return await self._files.follow_version(file_id, key, now)

    # batching

    async def stable_queue(self, folder: str, limit: int) -> list[Queued]:
        return await self._batches.stable_queue(folder, limit)

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
        return await self._batches.create_batch(
            folder, file_ids, now, attempt=attempt, parent_id=parent_id, not_before=not_before
        )

    async def open_batches(self, now: float, folder: str | None = None) -> list[BatchRow]:
        return await self._batches.open_batches(now, folder)

    async def next_open_at(self, folder: str | None = None) -> float | None:
        return await self._batches.next_open_at(folder)

    async def batch(self, batch_id: int) -> BatchRow:
        return await self._batches.batch(batch_id)

    async def batch_files(self, batch_id: int) -> list[FileRow]:
        return await self._batches.batch_files(batch_id)

    async def mark_submitting(self, batch_id: int, job_id: str, now: float) -> None:
        await self._batches.mark_submitting(batch_id, job_id, now)

    async def mark_submitted(self, batch_id: int, delivery_id: str, now: float) -> None:
        await self._batches.mark_submitted(batch_id, delivery_id, now)

    async def reopen(self, batch_id: int, now: float, not_before: float, error: str | None) -> None:
        await self._batches.reopen(batch_id, now, not_before, error)

    async def mark_held(
        self, batch_id: int, reason: HoldReason, now: float, detail: str | None = None
    ) -> None:
        await self._batches.mark_held(batch_id, reason, now, detail)

    async def held_batches(self, folder: str | None = None) -> list[BatchRow]:
        return await self._batches.held_batches(folder)

    async def release_held(self, batch_ids: Sequence[int], now: float) -> int:
        return await self._batches.release_held(batch_ids, now)

    async def in_doubt_batches(self) -> list[BatchRow]:
        return await self._batches.in_doubt_batches()

    async def submitted_batches(self, folder: str | None = None) -> list[BatchRow]:
        return await self._batches.submitted_batches(folder)

    async def known_delivery_ids(self) -> set[str]:
        return await self._batches.known_delivery_ids()

    async def complete_batch(self, batch_id: int, now: float) -> None:
        await self._batches.complete_batch(batch_id, now)

    async def fail_batch(
        self,
        batch_id: int,
        reason: str,
        now: float,
        retries: Sequence[RetryPlan],
        give_up: Sequence[int],
    ) -> list[int]:
        return await self._batches.fail_batch(batch_id, reason, now, retries, give_up)

    # post-actions

    async def pending_actions(self, limit: int = 500) -> list[FileRow]:
        return await self._files.pending_actions(limit)

    async def mark_done(self, file_ids: Sequence[int], now: float) -> None:
        await self._files.mark_done(file_ids, now)

    async def mark_failed_handled(self, file_ids: Sequence[int], now: float) -> int:
        return await self._files.mark_failed_handled(file_ids, now)

    async def requeue_failed(self, now: float, folder: str | None = None) -> int:
        return await self._files.requeue_failed(now, folder)

    async def set_error(self, file_id: int, error: str, now: float) -> None:
        await self._files.set_error(file_id, error, now)

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
        await report.record_scan(
            self._pg, folder, mode=mode, mode_reason=mode_reason, finished_at=finished_at,
            files_seen=files_seen, duration_s=duration_s,
        )  # fmt: skip

    async def counts(self, folder: str | None = None) -> dict[str, dict[str, int]]:
        return await report.counts(self._pg, folder)

    async def snapshot(self, now: float, recent_failures: int = 20) -> StatusSnapshot:
        return await report.snapshot(self._pg, now, recent_failures)

    async def prune(
        self, now: float, retention_s: float, exists: Callable[[str, str], bool]
    ) -> int:
        return await report.prune(self._pg, now, retention_s, exists)

    async def size_bytes(self) -> int:
        """The database's size on the server."""
        size = await report.size_bytes(self._pg)
        LEDGER_BYTES.set(size)
        return size

    # folder leases

    async def lease_round(
        self, folders: Sequence[str], lease_s: float, release: Sequence[str] = ()
    ) -> LeaseGrant:
        """Heartbeat, renew, release, claim: one transaction on the lease connection.

        Bounded by a renewal interval: a round that cannot finish by then (the network
        hangs) fails, and the caller's acting window runs out on its own clock.
        """

        async def one_round() -> LeaseGrant:
            async with self._lease_pg.tx() as conn:
                return await leases.lease_round(conn, self._member, folders, lease_s, release)

        try:
            return await asyncio.wait_for(one_round(), max(0.5, renew_interval_s(lease_s) * 2))
        except TimeoutError as exc:
            raise LedgerUnavailableError(f"ledger {self.where}: lease round timed out") from exc

    async def leave(self) -> None:
        async with self._lease_pg.tx() as conn:
            await leases.leave(conn, self._member.token)

    async def fleet(self) -> Fleet:
        async with self._pg.tx() as conn:
            return await leases.read_fleet(conn)


if TYPE_CHECKING:

    def _conforms(ledger: PostgresLedger) -> LedgerStore:  # mypy proves the Protocol is met
        return ledger
