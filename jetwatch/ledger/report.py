"""The SQLite ledger's status queries: counts, the snapshot ``status`` shows, scans recorded."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from jetwatch.domain.report import (
    FailedFile,
    FolderStatus,
    HeldBatch,
    InFlightBatch,
    StatusSnapshot,
)
from jetwatch.domain.states import FileState, HoldReason
from jetwatch.ledger.db import Db

# Not yet delivered: what an operator waits for, and what the oldest-pending age measures.
_PENDING = ("STABLE", "BATCHED", "SUBMITTED")


def read_counts(conn: sqlite3.Connection, folder: str | None) -> dict[str, dict[str, int]]:
    """folder → state → count, every FileState present for each folder with rows.

    Read from ``file_counts``, which triggers keep equal to a GROUP BY over ``files``.
    """
    result: dict[str, dict[str, int]] = {}
    for name, state, count in conn.execute(
        "SELECT folder, state, files FROM file_counts WHERE (?1 IS NULL OR folder = ?1) "
        "AND files > 0",
        (folder,),
    ):
        per_state = result.setdefault(name, dict.fromkeys((s.value for s in FileState), 0))
        per_state[state] = int(count)
    return result


def _oldest_pending(conn: sqlite3.Connection, folders: Iterable[str]) -> dict[str, float]:
    """folder → stable_at of its oldest file not yet delivered.

    One min() per folder and state: each is a single probe of files_by_folder_state,
    where one GROUP BY over the pending states would walk the index of every folder.
    """
    oldest: dict[str, float] = {}
    for name in folders:
        for state in _PENDING:
            (value,) = conn.execute(
                "SELECT min(stable_at) FROM files WHERE folder = ? AND state = ?", (name, state)
            ).fetchone()
            if value is not None and (name not in oldest or value < oldest[name]):
                oldest[name] = float(value)
    return oldest


def _folders(conn: sqlite3.Connection) -> tuple[FolderStatus, ...]:
    counts = read_counts(conn, None)
    scans = {
        str(r[0]): r[1:]
        for r in conn.execute(
            "SELECT name, mode, mode_reason, last_scan_at, files_seen, scan_duration_s FROM folders"
        )
    }
    oldest = _oldest_pending(conn, counts)
    empty = dict.fromkeys((s.value for s in FileState), 0)
    statuses = []
    for name in sorted(counts.keys() | scans.keys()):
        mode, reason, scan_at, seen, duration_s = scans.get(name, (None,) * 5)
        statuses.append(
            FolderStatus(
                folder=name,
                counts=counts.get(name, empty),
                mode=mode,
                mode_reason=reason,
                last_scan_at=scan_at,
                files_seen=seen,
                scan_duration_s=duration_s,
                oldest_pending_at=oldest.get(name),
            )
        )
    return tuple(statuses)


def _failed_files(
    conn: sqlite3.Connection, where: tuple[str, str], limit: int
) -> tuple[FailedFile, ...]:
    rows = conn.execute(
        f"SELECT folder, relpath, {where[0]}, attempts, updated_at FROM files "  # noqa: S608 - constants only
        f"WHERE {where[1]} ORDER BY updated_at DESC, id DESC LIMIT ?",
        (limit,),
    )
    return tuple(FailedFile(r[0], r[1], r[2], r[3], r[4]) for r in rows)


def read_snapshot(
    conn: sqlite3.Connection, now: float, recent_failures: int, path: str, size: int
) -> StatusSnapshot:
    """The status report; call inside one read transaction so its parts agree."""
    in_flight = tuple(
        InFlightBatch(r[0], r[1], r[2], r[3], r[4], r[5], max(0.0, now - (r[6] or r[7])))
        for r in conn.execute(
            "SELECT folder, id, delivery_id, file_count, total_bytes, attempt, submitted_at, "
            "created_at FROM batches WHERE state = 'SUBMITTED' ORDER BY id"
        )
    )
    held = tuple(
        HeldBatch(r[0], r[1], held_text(r[2], r[5]), r[3], r[4])
        for r in conn.execute(
            "SELECT folder, id, held_reason, updated_at, file_count, last_error FROM batches "
            "WHERE state = 'HELD' ORDER BY id"
        )
    )
    (open_count,) = conn.execute("SELECT count(*) FROM batches WHERE state = 'OPEN'").fetchone()
    return StatusSnapshot(
        taken_at=now,
        ledger_path=path,
        ledger_bytes=size,
        folders=_folders(conn),
        in_flight=in_flight,
        held=held,
        open_batches=int(open_count),
        recent_failures=_failed_files(conn, ("error", "state = 'FAILED'"), recent_failures),
        action_errors=_failed_files(
            conn,
            (
                "action_error",
                "state IN ('TRANSFERRED', 'FAILED') AND action_done = 0 "
                "AND action_error IS NOT NULL",
            ),
            recent_failures,
        ),
    )


def held_text(stored: str | None, detail: str | None) -> str | None:
    reason = HoldReason.from_stored(stored)
    if reason is None:
        return None
    return f"{reason.value}: {detail}" if detail else reason.value


def record_scan(
    db: Db,
    folder: str,
    *,
    mode: str,
    mode_reason: str,
    finished_at: float,
    files_seen: int,
    duration_s: float,
) -> None:
    """Remember a folder's last full scan (shown by status, also while the daemon is down)."""
    with db.write() as conn:
        conn.execute(
            "INSERT INTO folders (name, mode, mode_reason, last_scan_at, files_seen, "
            "scan_duration_s) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "mode = excluded.mode, mode_reason = excluded.mode_reason, "
            "last_scan_at = excluded.last_scan_at, files_seen = excluded.files_seen, "
            "scan_duration_s = excluded.scan_duration_s",
            (folder, mode, mode_reason, finished_at, files_seen, duration_s),
        )


def counts(db: Db, folder: str | None = None) -> dict[str, dict[str, int]]:
    """folder → state → count; every state is present for a folder with rows."""
    with db.read() as conn:
        return read_counts(conn, folder)


def snapshot(db: Db, now: float, recent_failures: int = 20) -> StatusSnapshot:
    """Everything status shows, from one read transaction."""
    size = db.size_bytes()
    with db.read() as conn:
        return read_snapshot(conn, now, recent_failures, str(db.path), size)
