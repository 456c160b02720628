"""The ledger's disk fills up: intake is blocked and says so, nothing is lost or sent twice."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from jetwatch.app.daemon import Daemon
from jetwatch.emulators.jet import EmulatorServer
from jetwatch.metrics import REGISTRY
from tests.fixtures.pipeline import (
    all_done,
    emulator_stats,
    make_settings,
    path_counts,
    received,
    running_daemon,
    wait_arrived,
    wait_true,
    write_file,
)

Job = tuple[EmulatorServer, str, Path, Path]
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def disk_full() -> sqlite3.OperationalError:
    """What sqlite3 raises when a write finds no space (SQLITE_FULL)."""
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = sqlite3.SQLITE_FULL
    exc.sqlite_errorname = "SQLITE_FULL"
    return exc


class FullDisk:
    """Stands in for the daemon's sqlite3 connection; writes fail while ``fails(sql)``.

    ENOSPC cannot be caused for one file in a test, so this is the one fake: everything
    else the connection does is real.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.fails: Callable[[str], bool] = lambda sql: False
        self.refused = 0

    def _check(self, sql: str) -> None:
        if sql.lstrip().upper().startswith(WRITES) and self.fails(sql):
            self.refused += 1
            raise disk_full()

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@contextlib.contextmanager
def full_disk(daemon: Daemon) -> Iterator[FullDisk]:
    """Put a FullDisk in front of the running daemon's ledger connection for the block."""
    db = daemon.ledger._db  # type: ignore[attr-defined]
    with db.lock:
        fake = FullDisk(db.conn)
        db.conn = fake
    try:
        yield fake
    finally:
        with db.lock:
            db.conn = fake._conn


class FailTimes:
    """A ``fails`` predicate: the first ``times`` statements containing ``text`` fail."""

    def __init__(self, text: str, times: int) -> None:
        self.text = text
        self.left = times

    def __call__(self, sql: str) -> bool:
        if self.text in sql and self.left > 0:
            self.left -= 1
            return True
        return False


async def readyz(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{daemon.ops_url}/readyz") as response,
    ):
        body: dict[str, Any] = await response.json()
        return response.status, body


def _sample(name: str, label: str) -> float:
    return REGISTRY.get_sample_value(name, {"folder": label}) or 0.0


@pytest.mark.parametrize("poll", ["auto", "scan"])
async def test_full_ledger_blocks_intake_visibly_and_resumes(
    emulator_job: Job, tmp_path: Path, poll: str
) -> None:
    """While no row can be written, files wait (readiness says why); then all go, once each."""
    server, job_id, src, dst = emulator_job
    # In scan mode full walks every 0.2 s too (not only passes over changed directories),
    # so the files waiting for the ledger are found again and again.
    fast_walks = {"reconcile_seconds": 0.2} if poll == "scan" else {}
    settings = make_settings(
        server.url,
        src,
        tmp_path / "ledger.db",
        job_id,
        poll=poll,
        scan_interval_seconds=0.2,
        **fast_walks,
    )
    label = settings.folders[0].label
    names = [f"during/{i}.txt" for i in range(5)]
    async with running_daemon(settings) as daemon:
        write_file(src / "before.txt", b"before")
        await wait_arrived(src, dst, ["before.txt"])
        await wait_true(lambda: all_done(daemon, 1), what="first file done")
        with full_disk(daemon) as fake:
            fake.fails = lambda sql: True
            for rel in names:
                write_file(src / rel, rel.encode())
            await wait_true(
                lambda: bool(daemon.intakes[_label(daemon)].health.blocked), what="blocked"
            )
            status, body = await readyz(daemon)
            assert status == 503
            assert any("ledger unavailable" in r for r in body["reasons"]), body
            if poll == "scan":  # rescans while blocked find the waiting files again
                scans = _sample("jetwatch_scan_duration_seconds_count", label)
                await wait_true(
                    lambda: _sample("jetwatch_scan_duration_seconds_count", label) >= scans + 3,
                    what="three more scans",
                )
            assert path_counts(await received(server)) == {"/before.txt": 1}
            fake.fails = lambda sql: False
            await wait_arrived(src, dst, names)
            await wait_true(lambda: all_done(daemon, 1 + len(names)), what="all done")
            assert fake.refused > 0
        assert daemon.intakes[_label(daemon)].health.blocked == ""
        status, body = await readyz(daemon)
        assert status == 200, body
    # Each file was detected once: waiting for the ledger does not make it new again.
    assert _sample("jetwatch_files_detected_total", label) == 1 + len(names)
    counts = path_counts(await received(server))
    assert counts == {"/before.txt": 1, **{"/" + n: 1 for n in names}}


async def test_full_ledger_right_after_jet_accepted_is_adopted(
    assumed_job: Job, tmp_path: Path
) -> None:
    """Jet accepted a delivery but its id could not be recorded: adopted later, not re-sent
    (where the API shows a job's deliveries and their objects: the assumed emulator)."""
    server, job_id, src, dst = assumed_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id)
    names = ["a.bin", "b.bin"]
    async with running_daemon(settings) as daemon:
        await wait_true(
            lambda: daemon.registry.status(settings.folders[0].label).usable, what="job resolved"
        )
        with full_disk(daemon) as fake:
            # Only the write that records the accepted delivery fails, twice.
            fake.fails = FailTimes("SET state = 'SUBMITTED', delivery_id", 2)
            for rel in names:
                write_file(src / rel, rel.encode() * 50)
            await wait_arrived(src, dst, names)
            await wait_true(lambda: all_done(daemon, len(names)), what="all done")
            assert fake.refused == 2
    stats = await emulator_stats(server)
    assert stats["requests"]["POST /v1/jobs/{jobId}/deliveries"] == 1
    assert path_counts(await received(server)) == {"/a.bin": 1, "/b.bin": 1}


def _label(daemon: Daemon) -> str:
    [label] = list(daemon.intakes)
    return label


async def test_full_ledger_while_deliveries_finish(emulator_job: Job, tmp_path: Path) -> None:
    """Recording finished deliveries fails for a while: they are recorded later, once each."""
    server, job_id, src, dst = emulator_job
    settings = make_settings(server.url, src, tmp_path / "ledger.db", job_id, max_files=1)
    names = [f"f{i}.bin" for i in range(8)]
    async with running_daemon(settings) as daemon:
        with full_disk(daemon) as fake:
            fake.fails = FailTimes("SET state = 'COMPLETED'", 6)
            for rel in names:
                write_file(src / rel, rel.encode() * 30)
            await wait_arrived(src, dst, names)
            await wait_true(lambda: all_done(daemon, len(names)), what="all done")
            assert fake.refused == 6
    assert path_counts(await received(server)) == {"/" + n: 1 for n in names}
