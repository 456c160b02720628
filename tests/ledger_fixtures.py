"""Shared ledger fixtures and helpers: a real SQLite ledger in tmp_path, quick ways to fill it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jetwatch.ledger import FileKey
from jetwatch.ledger_sqlite import SqliteLedger

T0 = 1_700_000_000.0  # a fixed "now"; tests pass times explicitly, never read the clock


def make_keys(count: int, prefix: str = "clip", *, size: int = 100) -> list[FileKey]:
    """``count`` distinct keys ``prefix/000.mxf`` ... with distinct inodes."""
    return [FileKey(f"{prefix}/{i:03d}.mxf", size + i, 1_000 + i, 10_000 + i) for i in range(count)]


def submitted_batch(
    ledger: SqliteLedger, folder: str, keys: list[FileKey], now: float, delivery_id: str
) -> tuple[int, list[int]]:
    """Add keys as STABLE, batch them and take the batch to SUBMITTED; (batch id, file ids)."""
    ids = ledger.add_stable(folder, keys, now)
    batch_id = ledger.create_batch(folder, ids, now)
    ledger.mark_submitting(batch_id, "job-1", now)
    ledger.mark_submitted(batch_id, delivery_id, now)
    return batch_id, ids


def delivered(ledger: SqliteLedger, folder: str, keys: list[FileKey], now: float) -> list[int]:
    """Take keys all the way to TRANSFERRED; returns their file ids."""
    batch_id, ids = submitted_batch(ledger, folder, keys, now, f"dlv-{folder}-{keys[0].relpath}")
    ledger.complete_batch(batch_id, now)
    return ids


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    """A fresh ledger file under tmp_path, closed after the test."""
    with SqliteLedger.open(tmp_path / "state" / "ledger.db") as ledger:
        yield ledger
