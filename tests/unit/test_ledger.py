"""Tests of the SQLite ledger: every transition and its guard, intake, post-actions, upkeep."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jetwatch.domain.states import (
    FileKey,
    InvalidTransitionError,
)
from jetwatch.errors import LedgerCorruptError, LedgerError, LedgerUnavailableError
from jetwatch.ledger.migrations import SCHEMA_VERSION
from jetwatch.ledger.sqlite import SqliteLedger
from jetwatch.metrics import LEDGER_ERRORS
from tests.fixtures.host import call_as_user, give_to
from tests.fixtures.ledger import T0, make_keys, stable_rows

FOLDER = "cams"


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    async with await SqliteLedger.open(tmp_path / "state" / "ledger.db") as opened:
        yield opened


async def states(ledger: SqliteLedger, folder: str = FOLDER) -> dict[str, int]:
    """Non-zero counts by state of one folder."""
    return {k: v for k, v in (await ledger.counts(folder)).get(folder, {}).items() if v}


# opening


async def test_open_creates_folder_wal_schema_version(tmp_path: Path) -> None:
    """A new ledger gets its parent folder, WAL mode and the current schema in user_version."""
    path = tmp_path / "a" / "b" / "ledger.db"
    async with await SqliteLedger.open(path) as ledger:
        await ledger.add_stable(FOLDER, make_keys(1), T0)
        raw = sqlite3.connect(path)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        finally:
            raw.close()
    async with await SqliteLedger.open(path) as again:
        assert await states(again) == {"STABLE": 1}


async def test_closed_ledger_raises_ledger_error(tmp_path: Path) -> None:
    """Using a closed ledger is a LedgerError, not a sqlite3 error; close is idempotent."""
    ledger = await SqliteLedger.open(tmp_path / "ledger.db")
    await ledger.aclose()
    await ledger.aclose()
    with pytest.raises(LedgerError):
        await ledger.counts()


# the SQLite file: a state no public call produces
async def test_create_batch_refuses_two_versions_of_a_path(ledger: SqliteLedger) -> None:
    """Should two STABLE versions of a path ever exist, pending offers the newest only and
    a batch never holds both."""
    (old,) = await ledger.add_stable(FOLDER, [FileKey("a.mov", 1, 1, 1)], T0)
    (new,) = await ledger.add_stable(FOLDER, [FileKey("a.mov", 2, 2, 1)], T0)
    raw = sqlite3.connect(ledger.path)  # force the state no public call produces
    raw.execute("UPDATE files SET state = 'STABLE' WHERE id = ?", (old,))
    raw.commit()
    raw.close()
    assert [q.file_id for q in await ledger.stable_queue(FOLDER, 10)] == [new]
    with pytest.raises(InvalidTransitionError, match="one version of a path"):
        await ledger.create_batch(FOLDER, [old, new], T0)
    assert await states(ledger) == {"STABLE": 2}


# crash safety and refusal to use a bad file


async def test_what_precedes_a_post_is_synced_what_only_repeats_work_is_not(
    ledger: SqliteLedger,
) -> None:
    """Records a power cut may undo at the cost of repeated work commit without a sync
    (synchronous NORMAL = 1); SUBMITTING, written before the POST, and the delivery id
    commit synced (FULL = 2), which syncs everything before them too."""
    db = ledger._db

    async def synchronous() -> int:
        return int(await db.call(lambda: db.conn.execute("PRAGMA synchronous").fetchone()[0]))

    ids = await ledger.add_stable(FOLDER, make_keys(3), T0)
    assert await synchronous() == 1
    batch = await ledger.create_batch(FOLDER, ids, T0)
    assert await synchronous() == 1
    await ledger.mark_submitting(batch, "job", T0)
    assert await synchronous() == 2
    await ledger.mark_submitted(batch, "delivery", T0)
    assert await synchronous() == 2
    await ledger.complete_batch(batch, T0)
    assert await synchronous() == 1
    await ledger.mark_done(ids, T0)
    assert await synchronous() == 1
    assert await states(ledger) == {"DONE": 3}


CRASH_CHILD = """
import asyncio
import sys
from pathlib import Path
from jetwatch.domain.states import FileKey
from jetwatch.ledger.sqlite import SqliteLedger

async def main():
    ledger = await SqliteLedger.open(Path(sys.argv[1]))
    tag, n, per_round = sys.argv[2], 0, int(sys.argv[3])
    while True:
        n += 1
        keys = [FileKey(f"{tag}/{n}/{i}", i, n, i) for i in range(per_round)]
        ids = await ledger.add_stable("cams", keys, float(n))
        batch = await ledger.create_batch("cams", ids[: per_round // 2], float(n))
        await ledger.mark_submitting(batch, "job", float(n))
        await ledger.mark_submitted(batch, f"d-{tag}-{n}", float(n))
        print("committed", n, flush=True)

asyncio.run(main())
"""


# Big rounds keep the child inside a transaction most of the time, where the kill should land.
PER_ROUND = 2_000
HALF = PER_ROUND // 2


def run_until_killed(path: Path, tag: str, commits: int) -> int:
    """Run CRASH_CHILD until it reports ``commits`` rounds, then SIGKILL it mid-flight."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, str(path), tag, str(PER_ROUND)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put("")  # EOF: the child died on its own

    threading.Thread(target=pump, daemon=True).start()
    deadline, done = time.monotonic() + 60, 0
    try:
        while done < commits:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line, f"child exited early: {proc.stderr.read() if proc.stderr else ''}"
            if line.startswith("committed "):
                done = int(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return done


async def assert_consistent(path: Path, min_rounds: int) -> None:
    """Every round is whole: PER_ROUND rows, one batch of half, its files in the batch's state."""
    async with await SqliteLedger.open(path) as ledger:  # runs quick_check
        counts = (await ledger.counts())["cams"]
        total = sum(counts.values())
        assert total % PER_ROUND == 0
        assert total >= PER_ROUND * min_rounds
        batches = [
            *await ledger.open_batches(float("inf")),
            *await ledger.in_doubt_batches(),
            *await ledger.submitted_batches(),
        ]
        expected = {"OPEN": "BATCHED", "SUBMITTING": "BATCHED", "SUBMITTED": "SUBMITTED"}
        for batch in batches:
            files = await ledger.batch_files(batch.id)
            assert len(files) == HALF
            assert {f.state for f in files} == {expected[batch.state]}
        assert counts["BATCHED"] + counts["SUBMITTED"] == HALF * len(batches)
        assert len(batches) in (total // PER_ROUND, total // PER_ROUND - 1)
        assert counts["STABLE"] == total - HALF * len(batches)
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        raw.close()


async def test_sigkill_mid_transaction_leaves_a_consistent_ledger(tmp_path: Path) -> None:
    """A process killed -9 while writing loses at most its open transaction, twice over."""
    path = tmp_path / "ledger.db"
    first = run_until_killed(path, "one", 20)
    await assert_consistent(path, first)
    second = run_until_killed(path, "two", 10)
    await assert_consistent(path, first + second)


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize(
    "garbage",
    [os.urandom(8192), b"not sqlite", b"\x00" * 100, b"SQLite format 3\x00" + b"\xff" * 4080],
)
async def test_garbage_file_is_refused_and_left_untouched(tmp_path: Path, garbage: bytes) -> None:
    """A file that is not SQLite (even a short one) raises LedgerCorruptError; bytes unchanged."""
    path = tmp_path / "ledger.db"
    path.write_bytes(garbage)
    with pytest.raises(LedgerCorruptError, match="move-aside"):
        await SqliteLedger.open(path)
    assert listing(tmp_path) == {"ledger.db": garbage}


async def test_damaged_page_fails_the_check_and_is_left_untouched(tmp_path: Path) -> None:
    """A ledger with a scribbled-over page fails quick_check at open; nothing is written."""
    path = tmp_path / "ledger.db"
    async with await SqliteLedger.open(path) as ledger:
        await ledger.add_stable(FOLDER, make_keys(2000), T0)
    data = bytearray(path.read_bytes())
    data[4096 * 5 : 4096 * 5 + 300] = os.urandom(300)
    path.write_bytes(bytes(data))
    with pytest.raises(LedgerCorruptError):
        await SqliteLedger.open(path)
    assert listing(tmp_path) == {"ledger.db": bytes(data)}


async def test_other_sqlite_database_is_refused(tmp_path: Path) -> None:
    """A SQLite file of another program is not adopted, and not modified."""
    path = tmp_path / "app.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE users (name TEXT)")
    raw.commit()
    raw.close()
    before = path.read_bytes()
    with pytest.raises(LedgerCorruptError, match="not a jetwatch ledger"):
        await SqliteLedger.open(path)
    assert path.read_bytes() == before


async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    """A ledger written by a newer jetwatch is refused with a clear message."""
    path = tmp_path / "ledger.db"
    await (await SqliteLedger.open(path)).aclose()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(LedgerCorruptError, match="newer"):
        await SqliteLedger.open(path)


async def test_empty_file_becomes_a_ledger(tmp_path: Path) -> None:
    """A 0-byte file (e.g. created by a provisioning tool) is initialised, not refused."""
    path = tmp_path / "ledger.db"
    path.touch()
    async with await SqliteLedger.open(path) as ledger:
        assert await ledger.add_stable(FOLDER, make_keys(1), T0) == [1]


async def test_move_aside_renames_ledger_and_wal_files(tmp_path: Path) -> None:
    """move_aside renames all three files to .corrupt-<time> and never overwrites."""
    path = tmp_path / "ledger.db"
    parts = {"ledger.db": b"db", "ledger.db-wal": b"wal", "ledger.db-shm": b"shm"}
    for name, data in parts.items():
        (tmp_path / name).write_bytes(data)
    moved = SqliteLedger.move_aside(path, 0.0)
    assert moved.name == "ledger.db.corrupt-19700101T000000Z"
    assert listing(tmp_path) == {
        "ledger.db.corrupt-19700101T000000Z": b"db",
        "ledger.db.corrupt-19700101T000000Z-wal": b"wal",
        "ledger.db.corrupt-19700101T000000Z-shm": b"shm",
    }
    path.write_bytes(b"second")
    assert SqliteLedger.move_aside(path, 0.0).name == "ledger.db.corrupt-19700101T000000Z-2"
    async with await SqliteLedger.open(path) as fresh:
        assert await fresh.counts() == {}
    with pytest.raises(LedgerError):
        SqliteLedger.move_aside(tmp_path / "missing.db", 0.0)


# unavailable: full, locked, read-only


async def test_disk_full_keeps_previous_state_and_recovers(ledger: SqliteLedger) -> None:
    """SQLITE_FULL raises LedgerUnavailableError, rolls back whole, and writes resume later."""
    await ledger.add_stable(FOLDER, make_keys(10), T0)
    conn = ledger._db.conn  # max_page_count is per connection: reach the ledger's own
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")
    errors_before = LEDGER_ERRORS._value.get()
    big = [FileKey(f"big/{i:06d}-{'x' * 100}", i, i, i) for i in range(5_000)]
    with pytest.raises(LedgerUnavailableError):
        await ledger.add_stable(FOLDER, big, T0)
    assert LEDGER_ERRORS._value.get() == errors_before + 1
    assert await states(ledger) == {"STABLE": 10}
    assert (await stable_rows(ledger, FOLDER))[0].relpath == "clip/000.mxf"
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert len(await ledger.add_stable(FOLDER, big, T0)) == 5_000
    assert await states(ledger) == {"STABLE": 5_010}


async def test_locked_ledger_is_unavailable_then_recovers(ledger: SqliteLedger) -> None:
    """A write lock held elsewhere past the busy timeout raises LedgerUnavailableError."""
    ledger._db.conn.execute("PRAGMA busy_timeout = 50")  # keep the test quick
    other = sqlite3.connect(ledger.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LedgerUnavailableError):
            await ledger.add_stable(FOLDER, make_keys(1), T0)
        assert await ledger.counts() == {}  # reads still work under WAL
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert await ledger.add_stable(FOLDER, make_keys(1), T0) == [1]


async def test_read_only_connection_cannot_write(ledger: SqliteLedger) -> None:
    """A ledger opened read-only raises LedgerUnavailableError on any write."""
    await ledger.add_stable(FOLDER, make_keys(1), T0)
    async with await SqliteLedger.open_readonly(ledger.path) as reader:
        assert (await reader.counts())[FOLDER]["STABLE"] == 1
        with pytest.raises(LedgerUnavailableError):
            await reader.add_stable(FOLDER, make_keys(2, "new"), T0)
        with pytest.raises(LedgerUnavailableError):
            await reader.mark_gone([1], T0)
    assert await states(ledger) == {"STABLE": 1}


async def read_only_file_case(ledger_path: str) -> dict[str, object]:
    """Open a ledger file without write permission, read it, try a write (as its owner)."""
    async with await SqliteLedger.open(Path(ledger_path)) as ledger:
        counts = await states(ledger)
        try:
            await ledger.add_stable(FOLDER, make_keys(2, "new"), T0)
        except LedgerUnavailableError as exc:
            return {"states": counts, "refused": str(exc)}
    return {"states": counts, "refused": None}


async def test_read_only_file_cannot_be_written(open_tmp: Path) -> None:
    """A ledger file without write permission opens, reads, and refuses writes as unavailable
    (as an unprivileged user: root ignores file permissions)."""
    path = open_tmp / "ledger.db"
    async with await SqliteLedger.open(path) as ledger:
        await ledger.add_stable(FOLDER, make_keys(1), T0)
    if os.geteuid() == 0:
        give_to(open_tmp)
    path.chmod(0o444)
    if os.geteuid() == 0:
        found = await asyncio.to_thread(call_as_user, f"{__name__}:read_only_file_case", str(path))
    else:
        found = await read_only_file_case(str(path))
    assert found["states"] == {"STABLE": 1}
    assert found["refused"] is not None


async def test_every_write_is_durable_synchronous_full(ledger: SqliteLedger) -> None:
    """The daemon's own connection opens in WAL with synchronous=FULL: a commit survives a
    power cut, not only a crash. Only records whose loss repeats work turn it down for
    their own commit (see test_what_precedes_a_post_is_synced_...)."""
    db = ledger._db

    def pragmas() -> tuple[int, str]:
        conn = db.conn
        return (
            int(conn.execute("PRAGMA synchronous").fetchone()[0]),
            str(conn.execute("PRAGMA journal_mode").fetchone()[0]),
        )

    assert await db.call(pragmas) == (2, "wal")  # 2 = FULL
