"""Tests of the status report: text and JSON rendering, and reading a live or stopped ledger."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from jetwatch.app.status import format_age, format_bytes, load_snapshot, render_text, to_json
from jetwatch.domain.report import StatusSnapshot
from jetwatch.domain.states import FileKey, HoldReason
from jetwatch.errors import LedgerCorruptError, LedgerError
from jetwatch.ledger.sqlite import SqliteLedger
from tests.fixtures.ledger import T0, delivered, make_keys, submitted_batch


async def build_scenario(path: Path) -> None:
    """Two folders with a bit of everything: waiting, in flight, held, failed, action errors."""
    async with await SqliteLedger.open(path) as ledger:
        await ledger.record_scan(
            "cams", mode="events", mode_reason="inotify", finished_at=T0 - 120,
            files_seen=1234, duration_s=1.25,
        )  # fmt: skip
        await ledger.record_scan(
            "nas", mode="scan", mode_reason="network mount (nfs4)", finished_at=T0 - 30,
            files_seen=7, duration_s=0.5,
        )  # fmt: skip
        await ledger.add_stable("cams", make_keys(3, "waiting"), T0 - 600)
        await submitted_batch(
            ledger, "cams", make_keys(2, "big", size=2 * 1024**3), T0 - 185, "dlv-42"
        )
        held = await ledger.create_batch(
            "nas", await ledger.add_stable("nas", make_keys(1), T0 - 60), T0
        )
        await ledger.mark_held(held, HoldReason.PAUSED, T0 - 3700)
        batch_id, ids = await submitted_batch(ledger, "cams", make_keys(1, "broken"), T0, "dlv-7")
        await ledger.fail_batch(batch_id, "transfer failed: permission denied", T0 - 10, [], ids)
        (moved,) = await delivered(ledger, "cams", make_keys(1, "done"), T0)
        await ledger.set_error(moved, "post-action: PermissionError: Permission denied", T0 - 5)


@pytest.fixture
async def snapshot(tmp_path: Path) -> StatusSnapshot:
    path = tmp_path / "ledger.db"
    await build_scenario(path)
    return await load_snapshot(path, T0)


def test_render_text_shows_counts_watch_mode_and_scan(snapshot: StatusSnapshot) -> None:
    """Each folder shows its counts by state, watch mode with the reason, and last scan."""
    text = render_text(snapshot)
    lines = text.splitlines()
    header = next(line for line in lines if line.strip().startswith("FOLDER  STABLE"))
    states = ["STABLE", "BATCHED", "SUBMITTED", "TRANSFERRED", "DONE", "FAILED", "GONE"]
    assert header.split() == ["FOLDER", *states, "OLDEST", "PENDING"]
    cams = next(line for line in lines if line.split()[:2] == ["cams", "3"])
    assert cams.split()[:8] == ["cams", "3", "0", "2", "1", "0", "1", "0"]
    assert "10m00s ago" in cams
    assert any(line.split()[:5] == ["cams", "events", "2m00s", "ago", "1234"] for line in lines)
    assert any("network mount (nfs4)" in line and "30s ago" in line for line in lines)


def test_render_text_shows_flights_holds_failures_and_action_errors(
    snapshot: StatusSnapshot,
) -> None:
    """In-flight deliveries with age, held batches and why, failures and post-action errors."""
    text = render_text(snapshot)
    flight = next(line for line in text.splitlines() if "dlv-42" in line)
    assert flight.split()[1:] == ["cams", "dlv-42", "2", "4.0", "GiB", "3m05s", "1"]
    assert "IN FLIGHT (1)" in text
    held = next(line for line in text.splitlines() if "job paused" in line)
    assert held.split()[1:5] == ["nas", "1", "1h01m", "ago"]
    assert "RECENT FAILURES (1)" in text
    failure = next(line for line in text.splitlines() if "broken/000.mxf" in line)
    assert failure.rstrip().endswith("transfer failed: permission denied")
    assert "10s ago" in failure
    assert "POST-ACTION ERRORS (1)" in text
    assert "done/000.mxf  post-action: PermissionError: Permission denied" in text


def test_render_text_columns_are_aligned(snapshot: StatusSnapshot) -> None:
    """Counts end under their header's last letter; the next column starts at one offset."""
    lines = render_text(snapshot).splitlines()
    start = lines.index("FOLDERS") + 1
    header, *rows = lines[start : start + 3]
    assert [row.split()[0] for row in rows] == ["cams", "nas"]
    for name in ("STABLE", "SUBMITTED", "GONE"):
        end = header.index(name) + len(name)
        assert all(row[end - 1] != " " and row[end] == " " for row in rows)
    column = header.index("OLDEST")
    assert all(row[column - 2 : column] == "  " and row[column] != " " for row in rows)


async def test_render_text_of_an_empty_ledger(tmp_path: Path) -> None:
    """A new ledger renders without folders and with zero counts everywhere."""
    path = tmp_path / "ledger.db"
    await (await SqliteLedger.open(path)).aclose()
    text = render_text(await load_snapshot(path, T0))
    assert "no folders yet" in text
    assert "IN FLIGHT (0)" in text
    assert "RECENT FAILURES (0)" in text


def test_to_json_is_serialisable_with_stable_keys(snapshot: StatusSnapshot) -> None:
    """to_json returns plain JSON types under fixed keys, all states present per folder."""
    data = json.loads(json.dumps(to_json(snapshot)))
    assert set(data) == {
        "taken_at", "ledger", "folders", "open_batches", "in_flight", "held",
        "recent_failures", "post_action_errors",
    }  # fmt: skip
    cams, nas = data["folders"]
    assert cams["counts"] == {
        "STABLE": 3, "BATCHED": 0, "SUBMITTED": 2, "TRANSFERRED": 1, "DONE": 0,
        "FAILED": 1, "GONE": 0,
    }  # fmt: skip
    assert cams["watch"] == {"mode": "events", "reason": "inotify"}
    assert cams["last_scan"] == {"at": T0 - 120, "files": 1234, "duration_s": 1.25}
    assert cams["oldest_pending_age_s"] == 600.0
    assert nas["watch"]["reason"] == "network mount (nfs4)"
    assert data["in_flight"] == [
        {"folder": "cams", "batch_id": 1, "delivery_id": "dlv-42", "files": 2,
         "bytes": 2 * (2 * 1024**3) + 1, "attempt": 1, "age_s": 185.0},
    ]  # fmt: skip
    assert data["held"] == [
        {"folder": "nas", "batch_id": 2, "reason": "job paused", "since": T0 - 3700, "files": 1}
    ]
    assert data["recent_failures"][0]["relpath"] == "broken/000.mxf"
    assert data["recent_failures"][0]["attempts"] == 1
    assert data["post_action_errors"][0]["error"].startswith("post-action:")
    assert data["ledger"]["bytes"] > 0
    assert data["open_batches"] == 0


async def test_missing_ledger_is_a_clear_ledger_error(tmp_path: Path) -> None:
    """Status on a path without a ledger names the path and creates nothing."""
    path = tmp_path / "nowhere" / "ledger.db"
    with pytest.raises(LedgerError, match="no ledger at"):
        await load_snapshot(path, T0)
    assert not path.parent.exists()


async def test_corrupt_ledger_is_reported_not_repaired(tmp_path: Path) -> None:
    """Status on a garbage file raises LedgerCorruptError and leaves it as it was."""
    path = tmp_path / "ledger.db"
    path.write_bytes(b"garbage" * 100)
    with pytest.raises(LedgerCorruptError):
        await load_snapshot(path, T0)
    assert path.read_bytes() == b"garbage" * 100


async def test_uninitialised_ledger_is_a_ledger_error(tmp_path: Path) -> None:
    """An empty file is not a ledger yet: status says so instead of failing on SQL."""
    path = tmp_path / "ledger.db"
    path.touch()
    with pytest.raises(LedgerError, match="start the daemon once"):
        await load_snapshot(path, T0)


async def test_status_reads_while_the_daemon_writes(tmp_path: Path) -> None:
    """A running writer (even mid-transaction) does not block status, which sees commits only."""
    path = tmp_path / "ledger.db"
    async with await SqliteLedger.open(path) as daemon:
        await daemon.add_stable("cams", make_keys(2), T0)
        writer = sqlite3.connect(path, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("UPDATE files SET state = 'GONE'")  # uncommitted
            snap = await load_snapshot(path, T0)
            assert snap.folders[0].counts["STABLE"] == 2
            writer.execute("ROLLBACK")
        finally:
            writer.close()
        await daemon.add_stable("cams", [FileKey("late.mov", 1, 1, 1)], T0 + 1)
        assert (await load_snapshot(path, T0 + 2)).folders[0].counts["STABLE"] == 3


async def test_status_of_a_stopped_daemon_leaves_no_files_behind(tmp_path: Path) -> None:
    """Reading a cleanly closed ledger creates no -wal/-shm that another user would then own."""
    path = tmp_path / "ledger.db"
    await build_scenario(path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert (await load_snapshot(path, T0)).folders
    assert sorted(p.name for p in tmp_path.iterdir()) == before == ["ledger.db"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (3599, "59m59s"), (3600, "1h00m"),
     (86400 + 7200, "1d02h"), (-5, "0s")],
)  # fmt: skip
def test_format_age(seconds: float, text: str) -> None:
    """Durations are short and carry their unit."""
    assert format_age(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536 * 1024, "1.5 MiB"),
     (5 * 1024**5 * 1024, "5120.0 PiB")],
)  # fmt: skip
def test_format_bytes(size: int, text: str) -> None:
    """Sizes use binary units with one decimal."""
    assert format_bytes(size) == text


def test_header_counts_held_batches_and_says_what_failures_count(
    snapshot: StatusSnapshot,
) -> None:
    """The first line counts waiting and held batches (with their files), in plain plurals;
    the failures table says what its number counts against max_attempts."""
    first = render_text(snapshot).splitlines()[0]
    assert first.endswith(": 0 batches waiting to be sent, 1 batch held (1 file)"), first
    text = render_text(snapshot)
    assert "FAILED DELIVERIES" in text
    assert "ATTEMPTS" not in text
    assert "given up after failing max_attempts times alone" in text
    assert "(es)" not in text
    assert "(s)" not in text
