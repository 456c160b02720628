"""The batch loop on a real ledger and a fake clock: windows, linger, and a wall clock step."""

from __future__ import annotations

from pathlib import Path

import structlog

from jetwatch.config.settings import FolderSettings
from jetwatch.domain.batching import Queued
from jetwatch.domain.states import FileKey
from jetwatch.domain.wake import Stage, Wakeups
from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.pipeline.batcher import ROUND_BATCHES, Batcher
from tests.fixtures.clock import FakeClock
from tests.fixtures.ledger import T0, make_keys


def folder(tmp_path: Path, **overrides: object) -> FolderSettings:
    values: dict[str, object] = {
        "path": tmp_path, "job": "j", "name": "f", "max_files": 10,
        "batch_linger_seconds": 0.5, "max_wait_seconds": 5.0,
    }  # fmt: skip
    return FolderSettings.model_validate(values | overrides)


async def test_a_burst_is_cut_into_full_batches_window_by_window(
    sqlite_ledger: SqliteLedger, tmp_path: Path
) -> None:
    """More files than one window: every full batch forms in one round, the tail lingers."""
    clock, wakeups = FakeClock(), Wakeups()
    n = 10 * ROUND_BATCHES * 2 + 3
    await sqlite_ledger.add_stable("f", make_keys(n), clock.wall())
    batcher = Batcher(sqlite_ledger, lambda: {"f": folder(tmp_path)}, wakeups=wakeups, clock=clock)
    next_at = await batcher.run_once()
    batches = await sqlite_ledger.open_batches(clock.wall())
    assert [b.file_count for b in batches] == [10] * (2 * ROUND_BATCHES)
    assert next_at == clock.monotonic() + 0.5  # the 3 left over wait for the linger
    assert await wakeups.sleep(Stage.DELIVER, 0)
    clock.advance(0.5)
    assert await batcher.run_once() is None
    assert [b.file_count for b in await sqlite_ledger.open_batches(clock.wall())][-1] == 3


async def test_a_wall_clock_step_back_does_not_stall_batching(
    sqlite_ledger: SqliteLedger, tmp_path: Path
) -> None:
    """Linger runs on the monotonic clock: an hour's step back of the wall changes nothing."""
    clock, wakeups = FakeClock(), Wakeups()
    batcher = Batcher(sqlite_ledger, lambda: {"f": folder(tmp_path)}, wakeups=wakeups, clock=clock)
    await sqlite_ledger.add_stable("f", make_keys(3), clock.wall())
    assert await batcher.run_once() == clock.monotonic() + 0.5
    clock.step_wall(-3600.0)
    clock.advance(0.5)
    assert await batcher.run_once() is None
    assert [b.file_count for b in await sqlite_ledger.open_batches(clock.wall())] == [3]


class RacingLedger(SqliteLedger):
    """A real ledger on which intake records a newer version of a file right after the
    batcher read the queue, as an interleaved intake round would."""

    newer: FileKey | None = None

    async def stable_queue(self, folder: str, limit: int) -> list[Queued]:
        queued = await super().stable_queue(folder, limit)
        if self.newer is not None:
            newer, self.newer = self.newer, None
            await self.add_stable(folder, [newer], T0 + 1)  # the old version becomes GONE
        return queued


async def test_a_newer_version_recorded_meanwhile_does_not_stop_batching(tmp_path: Path) -> None:
    """The queue read before a concurrent supersede is read again; the batcher survives."""
    clock, wakeups = FakeClock(), Wakeups()
    async with await RacingLedger.open(tmp_path / "ledger.db") as ledger:
        keys = make_keys(10)
        await ledger.add_stable("f", keys, T0)
        ledger.newer = FileKey(keys[3].relpath, keys[3].size + 1, keys[3].mtime_ns + 1, 99)
        batcher = Batcher(ledger, lambda: {"f": folder(tmp_path)}, wakeups=wakeups, clock=clock)
        with structlog.testing.capture_logs() as logs:
            assert await batcher.run_once() is None  # a full batch of 10 forms at once
        [batch] = await ledger.open_batches(clock.wall())
        files = await ledger.batch_files(batch.id)
    assert [e["event"] for e in logs if e["event"] in ("batch_raced", "batch_formed")] == [
        "batch_raced",
        "batch_formed",
    ]
    assert {f.relpath for f in files} == {k.relpath for k in keys}
    assert any(f.inode == 99 for f in files)  # the newer version went, not the GONE one
