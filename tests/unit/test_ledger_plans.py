"""Statements over a list of ids reach their rows by key, whatever the size of the folder.

SQLite picks a plan per statement; beside ``id IN (SELECT value FROM json_each(?))`` a
``state = ...`` or ``folder = ...`` term can win, and the statement then walks every row in
that state or folder: mark_done over 1,000 ids walked every TRANSFERRED row of a 100,000-file
burst, earlier_versions every row of a folder of a million (0.26 s a call). Every statement
the ledger runs in a whole delivery cycle (and the side paths: held, gone, failed) is traced
and explained on a folder of thousands of rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from jetwatch.domain.states import FileKey, HoldReason, RetryPlan
from jetwatch.ledger.sqlite import SqliteLedger
from tests.fixtures.ledger import FOLDER, T0, make_keys

OLD_FILES = 3000


async def deliver(ledger: SqliteLedger, keys: list[FileKey], now: float) -> list[int]:
    """Take ``keys`` to DONE, 1000 per batch."""
    ids = await ledger.add_stable(FOLDER, keys, now)
    for start in range(0, len(ids), 1000):
        part = ids[start : start + 1000]
        batch_id = await ledger.create_batch(FOLDER, part, now)
        await ledger.mark_submitting(batch_id, "job-1", now)
        await ledger.mark_submitted(batch_id, f"delivery-{batch_id}", now)
        await ledger.complete_batch(batch_id, now)
        await ledger.mark_done(part, now)
    return ids


async def trace(ledger: SqliteLedger, callback: Callable[[str], None] | None) -> None:
    """Send every statement of each of the ledger's connections to ``callback``."""
    dbs = {id(db): db for db in (ledger._db, ledger._reader, ledger._looks) if db is not None}
    for db in dbs.values():
        await db.call(db.conn.set_trace_callback, callback)


async def one_cycle_and_its_side_paths(ledger: SqliteLedger) -> None:
    """New versions of known paths through every transition that takes a list of ids."""
    keys = [FileKey(k.relpath, k.size + 1, k.mtime_ns, k.inode) for k in make_keys(40, "old")]
    ids = await ledger.add_stable(FOLDER, keys, T0 + 10)
    await ledger.earlier_versions(FOLDER, ids)
    await ledger.stable_queue(FOLDER, 100)

    sent = await ledger.create_batch(FOLDER, ids[:10], T0 + 10)
    await ledger.mark_held(sent, HoldReason.PAUSED, T0 + 10)
    await ledger.release_held([sent], T0 + 11)
    await ledger.batch_files(sent)
    await ledger.mark_submitting(sent, "job-1", T0 + 11)
    await ledger.mark_submitted(sent, "delivery-new", T0 + 11)
    await ledger.complete_batch(sent, T0 + 12)
    await ledger.pending_actions(100)
    await ledger.mark_done(ids[:10], T0 + 12)

    gone = await ledger.create_batch(FOLDER, ids[10:15], T0 + 12)
    assert await ledger.mark_gone(ids[10:15], T0 + 12) == 5
    assert (await ledger.batch(gone)).state == "FAILED"

    failed = await ledger.create_batch(FOLDER, ids[15:25], T0 + 12)
    await ledger.mark_submitting(failed, "job-1", T0 + 12)
    retry = RetryPlan(file_ids=tuple(ids[15:20]), attempt=2, not_before=T0 + 20)
    await ledger.fail_batch(failed, "refused", T0 + 13, [retry], ids[20:25])
    await ledger.mark_failed_handled(ids[20:25], T0 + 13)


def plan(path: Path, statement: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + statement)]


def by_key(step: str) -> bool:
    """A plan step that reaches rows by an id or a key, or reads the id list itself."""
    if not step.startswith(("SCAN", "SEARCH")):
        return True  # LIST SUBQUERY, USE TEMP B-TREE, CORRELATED ...
    if "VIRTUAL TABLE" in step:
        return True  # the json_each list of ids
    return "PRIMARY KEY" in step or "relpath=?" in step or "(batch_id=?)" in step


async def test_statements_over_id_lists_reach_rows_by_key(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    statements: list[str] = []
    async with await SqliteLedger.open(path) as ledger:
        await deliver(ledger, make_keys(OLD_FILES, "old"), T0)
        await trace(ledger, statements.append)
        await one_cycle_and_its_side_paths(ledger)
        await trace(ledger, None)

    over_ids = {s for s in statements if "json_each(" in s and not s.lstrip().startswith("INSERT")}
    # Each transition of the cycle names its rows by ids: all of them were seen.
    assert any(s.startswith("UPDATE files SET state = 'DONE'") for s in over_ids)
    assert any("AS old" in s for s in over_ids)  # earlier_versions
    assert len(over_ids) >= 10
    plans = {s[:120]: plan(path, s) for s in sorted(over_ids)}
    walks = {s: steps for s, steps in plans.items() if not all(map(by_key, steps))}
    assert walks == {}
