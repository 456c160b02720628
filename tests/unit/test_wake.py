"""Doorbells: an idle intake sleeps long, so a file found gone must ring its folder's bell."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from jetwatch.config.settings import FolderSettings
from jetwatch.domain.states import FileKey, FileState
from jetwatch.domain.wake import Wakeups
from jetwatch.intake import folder as intake_folder
from jetwatch.intake.folder import FolderIntake
from jetwatch.ledger.sqlite import SqliteLedger
from tests.fixtures.emulator import wait_for
from tests.fixtures.ledger import sqlite_ledger

__all__ = ["sqlite_ledger"]  # fixture


def test_files_gone_rings_only_that_folders_intake_bell() -> None:
    wakeups = Wakeups()
    a, b = wakeups.intake_bell("a"), wakeups.intake_bell("b")
    assert wakeups.intake_bell("a") is a  # a reloaded intake of "a" shares it
    wakeups.files_gone("a", [])
    assert not a.is_set()  # nothing to look at
    key = FileKey("x.mov", 1, 2, 3)
    wakeups.files_gone("a", [key])
    assert a.is_set()
    assert not b.is_set()
    assert wakeups.take_gone("a") == [key]


async def test_an_idle_intake_offers_a_file_found_gone_again_at_once(
    sqlite_ledger: SqliteLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing pending: the settle loop sleeps IDLE_TICK_S, yet a file the deliverer found
    gone (it is back, unchanged) is STABLE again long before that."""
    assert intake_folder.IDLE_TICK_S >= 30  # the wait below is well inside one idle tick
    idle = asyncio.Event()  # set when the settle loop sleeps an idle tick, the file known
    real_sleep = intake_folder.sleep_or_wake

    async def sleep_or_wake(event: asyncio.Event, timeout_s: float) -> bool:
        if timeout_s == intake_folder.IDLE_TICK_S and intake._known and not event.is_set():
            idle.set()
        return await real_sleep(event, timeout_s)

    monkeypatch.setattr(intake_folder, "sleep_or_wake", sleep_or_wake)
    root = tmp_path / "w"
    root.mkdir()
    (root / "a.mov").write_bytes(b"data")
    settings = FolderSettings(
        path=root, job="j", name="f", settle_seconds=0, poll="events", reconcile_seconds=3600
    )
    wakeups = Wakeups()
    intake = FolderIntake(settings, sqlite_ledger, wakeups=wakeups)

    async def stable() -> list[int] | None:
        ids = [q.file_id for q in await sqlite_ledger.stable_queue("f", 10)]
        return ids or None

    task = asyncio.create_task(intake.run())
    try:
        [file_id] = await wait_for(stable, timeout_s=20)
        await asyncio.wait_for(idle.wait(), 20)  # the first scan recorded, nothing pending
        st = (root / "a.mov").stat()
        await sqlite_ledger.mark_gone([file_id], time.time())
        assert (await sqlite_ledger.counts("f"))["f"].get(FileState.STABLE, 0) == 0
        wakeups.files_gone("f", [FileKey("a.mov", st.st_size, st.st_mtime_ns, st.st_ino)])
        await wait_for(stable, timeout_s=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
