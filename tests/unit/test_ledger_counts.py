"""Tests of the ledger's schema v2: trigger-kept counts, the slim stable queue, the bulk reader."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jetwatch.domain.batching import Queued
from jetwatch.domain.states import FileKey, RetryPlan
from jetwatch.domain.store import key_fingerprint
from jetwatch.ledger.db import APPLICATION_ID
from jetwatch.ledger.migrations import MIGRATIONS, SCHEMA_VERSION
from jetwatch.ledger.sqlite import SqliteLedger
from tests.fixtures.ledger import T0, delivered, make_keys, stable_rows, submitted_batch

FOLDER = "cams"


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    async with await SqliteLedger.open(tmp_path / "ledger.db") as opened:
        yield opened


def grouped(path: Path) -> dict[str, dict[str, int]]:
    """Non-zero counts by folder and state, straight from the files table."""
    raw = sqlite3.connect(path)
    try:
        rows = raw.execute("SELECT folder, state, count(*) FROM files GROUP BY folder, state")
        result: dict[str, dict[str, int]] = {}
        for folder, state, count in rows:
            result.setdefault(folder, {})[state] = count
        return result
    finally:
        raw.close()


async def counted(ledger: SqliteLedger) -> dict[str, dict[str, int]]:
    """Non-zero counts by folder and state as the ledger reports them."""
    return {
        folder: {state: n for state, n in per_state.items() if n}
        for folder, per_state in (await ledger.counts()).items()
    }


async def check(ledger: SqliteLedger, expected_folder: dict[str, int] | None = None) -> None:
    """counts() equals a GROUP BY over files (and, if given, the expected counts of FOLDER)."""
    truth = grouped(ledger.path)
    assert await counted(ledger) == truth
    if expected_folder is not None:
        assert truth.get(FOLDER, {}) == expected_folder
    for folder, per_state in truth.items():
        assert {k: v for k, v in (await ledger.counts(folder))[folder].items() if v} == per_state
    snap = {f.folder: dict(f.counts) for f in (await ledger.snapshot(T0 + 1e5)).folders}
    assert {f: {k: v for k, v in c.items() if v} for f, c in snap.items() if any(c.values())} == (
        truth
    )


async def test_counts_follow_every_transition(ledger: SqliteLedger) -> None:
    """After each kind of transition, including prune and requeue, counts equal a GROUP BY."""
    ids = await ledger.add_stable(FOLDER, make_keys(6), T0)
    await ledger.add_stable("other", make_keys(2), T0)
    await check(ledger, {"STABLE": 6})
    await ledger.add_stable(FOLDER, [FileKey(make_keys(6)[5].relpath, 1, 1, 1)], T0)  # supersedes
    await check(ledger, {"STABLE": 6, "GONE": 1})
    batch_id = await ledger.create_batch(FOLDER, ids[:4], T0)
    await check(ledger, {"STABLE": 2, "BATCHED": 4, "GONE": 1})
    await ledger.mark_gone([ids[3]], T0)
    await check(ledger, {"STABLE": 2, "BATCHED": 3, "GONE": 2})
    await ledger.add_stable(FOLDER, [make_keys(6)[3]], T0)  # back unchanged: GONE → STABLE
    await check(ledger, {"STABLE": 3, "BATCHED": 3, "GONE": 1})
    await ledger.mark_submitting(batch_id, "job", T0)
    await ledger.mark_submitted(batch_id, "d1", T0)
    await check(ledger, {"STABLE": 3, "SUBMITTED": 3, "GONE": 1})
    plans = [RetryPlan((ids[0],), 2, T0)]
    (retry,) = await ledger.fail_batch(batch_id, "x", T0, plans, [ids[1], ids[2]])
    await check(ledger, {"STABLE": 3, "BATCHED": 1, "FAILED": 2, "GONE": 1})
    await ledger.mark_failed_handled([ids[1]], T0)
    await ledger.mark_submitting(retry, "job", T0)
    await ledger.mark_submitted(retry, "d2", T0)
    await ledger.complete_batch(retry, T0)
    await check(ledger, {"STABLE": 3, "TRANSFERRED": 1, "FAILED": 2, "GONE": 1})
    await ledger.mark_done([ids[0]], T0)
    await check(ledger, {"STABLE": 3, "DONE": 1, "FAILED": 2, "GONE": 1})
    assert await ledger.requeue_failed(T0 + 1, FOLDER) == 2
    await check(ledger, {"STABLE": 5, "DONE": 1, "GONE": 1})
    assert await ledger.prune(T0 + 100, 10, lambda folder, relpath: False) == 2  # the DONE and GONE
    await check(ledger, {"STABLE": 5})
    await ledger.mark_gone([q.file_id for q in await ledger.stable_queue(FOLDER, 100)], T0 + 200)
    await ledger.prune(T0 + 300, 10, lambda folder, relpath: False)
    await check(ledger)
    assert FOLDER not in await ledger.counts()  # a folder without rows is absent, as with GROUP BY


async def test_counts_follow_raw_sql_too(ledger: SqliteLedger) -> None:
    """The triggers keep counts right even for writes made outside the ledger API."""
    await delivered(ledger, FOLDER, make_keys(3), T0)
    raw = sqlite3.connect(ledger.path, isolation_level=None)
    try:
        raw.execute("UPDATE files SET state = 'DONE', action_done = 1 WHERE id = 1")
        raw.execute("UPDATE files SET folder = 'moved' WHERE id = 2")
        raw.execute("UPDATE files SET updated_at = 5 WHERE id = 3")  # no state change
        raw.execute("DELETE FROM files WHERE id = 1")
    finally:
        raw.close()
    await check(ledger, {"TRANSFERRED": 1})
    assert (await counted(ledger))["moved"] == {"TRANSFERRED": 1}


def make_v1(path: Path) -> None:
    """A ledger as jetwatch with schema version 1 left it, with rows in several states."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in MIGRATIONS[0]:
            raw.execute(statement)
        raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        raw.execute("PRAGMA user_version = 1")
        rows = [("a", f"f{i}", state) for i, state in enumerate(["STABLE"] * 3 + ["DONE"] * 2)]
        rows += [("b", "g", "GONE")]
        raw.executemany(
            "INSERT INTO files (folder, relpath, size, mtime_ns, inode, state, stable_at, "
            "updated_at) VALUES (?, ?, 1, 1, 1, ?, 0, 0)",
            rows,
        )
    finally:
        raw.close()


async def test_migration_from_v1_backfills_counts(tmp_path: Path) -> None:
    """Opening a version-1 ledger adds the counts, filled from the rows already there."""
    path = tmp_path / "old.db"
    make_v1(path)
    async with await SqliteLedger.open(path) as ledger:
        assert await counted(ledger) == {"a": {"STABLE": 3, "DONE": 2}, "b": {"GONE": 1}}
        await ledger.create_batch("a", [1, 2], T0)
        assert await counted(ledger) == grouped(path)
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        raw.close()
    async with await SqliteLedger.open_readonly(path) as reader:
        assert await counted(reader) == {
            "a": {"STABLE": 1, "BATCHED": 2, "DONE": 2},
            "b": {"GONE": 1},
        }


async def test_stable_queue_offers_what_may_be_sent_and_is_capped(ledger: SqliteLedger) -> None:
    """stable_queue offers the STABLE files no other version holds back, in order, capped."""
    late = await ledger.add_stable(FOLDER, make_keys(3, "late", size=7), T0 + 5)
    early = await ledger.add_stable(FOLDER, make_keys(2, "early", size=9), T0)
    _, (in_flight,) = await submitted_batch(
        ledger, FOLDER, [FileKey("busy.mov", 1, 1, 1)], T0, "d1"
    )
    await ledger.add_stable(FOLDER, [FileKey("busy.mov", 2, 2, 1)], T0)  # waits for the first
    await ledger.add_stable("other", make_keys(2), T0)
    offered = [r for r in await stable_rows(ledger, FOLDER) if r.relpath != "busy.mov"]
    expected = [Queued(r.id, r.size, r.stable_at) for r in offered]
    assert [q.file_id for q in expected] == early + late
    assert await ledger.stable_queue(FOLDER, 100) == expected
    assert await ledger.stable_queue(FOLDER, 3) == expected[:3]
    assert expected[0] == Queued(early[0], 9, T0)
    assert in_flight not in [q.file_id for q in expected]


async def test_bulk_read_does_not_wait_for_the_main_connection(ledger: SqliteLedger) -> None:
    """known_fingerprints reads on its own connection while another call holds the main one."""
    keys = make_keys(5)
    await ledger.add_stable(FOLDER, keys, T0)
    with ledger._db.lock:  # as a long call on the main connection would
        got = [await asyncio.wait_for(ledger.known_fingerprints(FOLDER), 30)]
    assert got == [{key_fingerprint(k.relpath, k.size, k.mtime_ns, k.inode) for k in keys}]
