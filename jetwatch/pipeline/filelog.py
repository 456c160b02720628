"""Per-file log lines people can read: ``file_delivered`` and ``file_failed``, within a budget.

Each finished batch is either listed file by file (one INFO ``file_delivered`` line per
file: folder, path, bytes, delivery) or, when the lines of the last minute would exceed
``[log] file_lines_per_minute``, summarised in one ``files_delivered`` line (files, bytes,
delivery, how many lines it stands for). A batch is never half listed, and a summary costs
no ledger read, so a 100,000-file burst logs about one minute's budget of file lines and
one line per batch after that. Files given up get one ERROR ``file_failed`` line each, with
the reason, from the same budget (the ``files_failed`` line of the batch is always there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from jetwatch.domain.states import BatchRow, FileRow
from jetwatch.domain.store import LedgerStore
from jetwatch.errors import LedgerError
from jetwatch.pipeline.presence import live_files

log = structlog.get_logger(__name__)

DEFAULT_LINES_PER_MINUTE = 1000
LINES_PER_TURN = 50  # file lines written between two turns of the event loop


class LineBudget:
    """Up to ``per_minute`` lines a minute, refilled continuously; all or nothing per batch."""

    __slots__ = ("_level", "_per_minute", "_updated")

    def __init__(self, per_minute: int) -> None:
        self._per_minute = max(0, per_minute)
        self._level = float(self._per_minute)
        self._updated: float | None = None

    def take(self, lines: int, now: float) -> bool:
        """Spend ``lines`` at ``now`` (monotonic s) if the budget has them all."""
        if self._updated is not None:
            refill = max(0.0, now - self._updated) * self._per_minute / 60.0
            self._level = min(float(self._per_minute), self._level + refill)
        self._updated = now
        if lines > self._level:
            return False
        self._level -= lines
        return True


class FileLines:
    """Writes the per-file lines of finished batches (the tracker calls it)."""

    def __init__(self, ledger: LedgerStore, *, per_minute: int = DEFAULT_LINES_PER_MINUTE) -> None:
        self._ledger = ledger
        self._budget = LineBudget(per_minute)

    async def delivered(self, batch: BatchRow, *, size: int, now: float) -> None:
        """The batch's delivery succeeded: one line per file, or one summary line."""
        handle = batch.delivery_id
        files: list[FileRow] | None = None
        if self._budget.take(batch.file_count, now):
            try:
                files = live_files(await self._ledger.batch_files(batch.id))
            except LedgerError:
                files = None  # the batch is recorded; its lines are only summarised
        if files is None:
            log.info(
                "files_delivered",
                folder=batch.folder,
                files=batch.file_count,
                bytes=size,
                delivery=handle,
                summarised=True,
            )
            return
        for n, f in enumerate(files, start=1):
            log.info(
                "file_delivered", folder=batch.folder, path=f.relpath, bytes=f.size, delivery=handle
            )
            if n % LINES_PER_TURN == 0:
                await asyncio.sleep(0)  # a line costs ~40 us: the loop serves others between

    def failed(self, batch: BatchRow, files: Sequence[FileRow], reason: str, now: float) -> None:
        """Files given up after their last attempt: one line each, while the budget lasts."""
        if not files or not self._budget.take(len(files), now):
            return
        for f in files:
            log.error(
                "file_failed",
                folder=batch.folder,
                path=f.relpath,
                bytes=f.size,
                delivery=batch.delivery_id,
                attempts=f.attempts,
                reason=reason,
            )
