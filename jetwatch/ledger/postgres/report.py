"""The PostgreSQL ledger's status queries and upkeep: counts, the snapshot, scans, pruning."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from jetwatch.domain.report import (
    FailedFile,
    FolderStatus,
    HeldBatch,
    InFlightBatch,
    StatusSnapshot,
)
from jetwatch.domain.states import FileState
from jetwatch.ledger.postgres.conn import Conn, Pg
from jetwatch.ledger.report import held_text

log = structlog.get_logger(__name__)

_PENDING = ("STABLE", "BATCHED", "SUBMITTED")
_PRUNE_CHUNK = 1000
_FINISHED = "(state IN ('DONE', 'GONE') OR (state = 'FAILED' AND action_done))"


async def read_counts(conn: Conn, folder: str | None) -> dict[str, dict[str, int]]:
    """folder → state → count, every FileState present for each folder with rows."""
    cursor = await conn.execute(
        "SELECT folder, state, files FROM file_counts "
        "WHERE (%(folder)s::text IS NULL OR folder = %(folder)s) AND files > 0",
        {"folder": folder},
    )
    result: dict[str, dict[str, int]] = {}
    for name, state, count in await cursor.fetchall():
        per_state = result.setdefault(name, dict.fromkeys((s.value for s in FileState), 0))
        per_state[state] = int(count)
    return result


async def _folders(conn: Conn) -> tuple[FolderStatus, ...]:
    counts = await read_counts(conn, None)
    cursor = await conn.execute(
        "SELECT name, mode, mode_reason, last_scan_at, files_seen, scan_duration_s FROM folders"
    )
    scans = {str(r[0]): r[1:] for r in await cursor.fetchall()}
    cursor = await conn.execute(
        "SELECT folder, min(stable_at) FROM files WHERE folder = ANY(%s) AND state = ANY(%s) "
        "GROUP BY folder",
        (sorted(counts), list(_PENDING)),
    )
    oldest = {str(r[0]): float(r[1]) for r in await cursor.fetchall()}
    empty = dict.fromkeys((s.value for s in FileState), 0)
    statuses = []
    for name in sorted(counts.keys() | scans.keys()):
        mode, reason, scan_at, seen, duration_s = scans.get(name, (None,) * 5)
        statuses.append(
            FolderStatus(name, counts.get(name, empty), mode, reason, scan_at, seen, duration_s,
                         oldest.get(name))
        )  # fmt: skip
    return tuple(statuses)


async def _failed_files(conn: Conn, column: str, where: str, limit: int) -> tuple[FailedFile, ...]:
    cursor = await conn.execute(
        f"SELECT folder, relpath, {column}, attempts, updated_at FROM files "  # noqa: S608 - constants only
        f"WHERE {where} ORDER BY updated_at DESC, id DESC LIMIT %s",
        (limit,),
    )
    return tuple(FailedFile(r[0], r[1], r[2], r[3], r[4]) for r in await cursor.fetchall())


async def snapshot(pg: Pg, now: float, recent_failures: int) -> StatusSnapshot:
    """Everything status shows, from one REPEATABLE READ transaction."""
    async with pg.tx() as conn:
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        size = await _size(conn)
        cursor = await conn.execute(
            "SELECT folder, id, delivery_id, file_count, total_bytes, attempt, submitted_at, "
            "created_at FROM batches WHERE state = 'SUBMITTED' ORDER BY id"
        )
        in_flight = tuple(
            InFlightBatch(r[0], r[1], r[2], r[3], r[4], r[5], max(0.0, now - (r[6] or r[7])))
            for r in await cursor.fetchall()
        )
        cursor = await conn.execute(
            "SELECT folder, id, held_reason, updated_at, file_count, last_error FROM batches "
            "WHERE state = 'HELD' ORDER BY id"
        )
        held = tuple(
            HeldBatch(r[0], r[1], held_text(r[2], r[5]), r[3], r[4])
            for r in await cursor.fetchall()
        )
        cursor = await conn.execute("SELECT count(*) FROM batches WHERE state = 'OPEN'")
        row = await cursor.fetchone()
        actionable = "state IN ('TRANSFERRED', 'FAILED') AND NOT action_done "
        return StatusSnapshot(
            taken_at=now,
            ledger_path=pg.where,
            ledger_bytes=size,
            folders=await _folders(conn),
            in_flight=in_flight,
            held=held,
            open_batches=int(row[0]) if row else 0,
            recent_failures=await _failed_files(conn, "error", "state = 'FAILED'", recent_failures),
            action_errors=await _failed_files(
                conn, "action_error", actionable + "AND action_error IS NOT NULL", recent_failures
            ),
        )


async def _size(conn: Conn) -> int:
    cursor = await conn.execute("SELECT pg_database_size(current_database())")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def size_bytes(pg: Pg) -> int:
    async with pg.tx() as conn:
        return await _size(conn)


async def record_scan(
    pg: Pg,
    folder: str,
    *,
    mode: str,
    mode_reason: str,
    finished_at: float,
    files_seen: int,
    duration_s: float,
) -> None:
    async with pg.tx() as conn:
        await conn.execute(
            "INSERT INTO folders (name, mode, mode_reason, last_scan_at, files_seen, "
            "scan_duration_s) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
            "mode = excluded.mode, mode_reason = excluded.mode_reason, "
            "last_scan_at = excluded.last_scan_at, files_seen = excluded.files_seen, "
            "scan_duration_s = excluded.scan_duration_s",
            (folder, mode, mode_reason, finished_at, files_seen, duration_s),
        )


async def prune(pg: Pg, now: float, retention_s: float, exists: Callable[[str, str], bool]) -> int:
    """Delete finished rows older than retention_s whose file is gone (``exists`` off the loop)."""
    cutoff, last_id, removed = now - retention_s, 0, 0
    while True:
        async with pg.tx() as conn:
            cursor = await conn.execute(
                f"SELECT id, folder, relpath FROM files WHERE id > %s AND updated_at < %s "  # noqa: S608 - constants only
                f"AND {_FINISHED} ORDER BY id LIMIT %s",
                (last_id, cutoff, _PRUNE_CHUNK),
            )
            rows = await cursor.fetchall()
        if not rows:
            break
        last_id = int(rows[-1][0])
        doomed = await asyncio.to_thread(_gone, rows, exists)
        if doomed:
            async with pg.tx() as conn:
                cursor = await conn.execute(
                    f"DELETE FROM files WHERE id = ANY(%s) AND updated_at < %s AND {_FINISHED}",  # noqa: S608 - constants only
                    (doomed, cutoff),
                )
                removed += cursor.rowcount
    async with pg.tx() as conn:
        cursor = await conn.execute(
            "DELETE FROM batches WHERE state IN ('COMPLETED', 'FAILED') AND updated_at < %s "
            "AND NOT EXISTS (SELECT 1 FROM files WHERE batch_id = batches.id)",
            (cutoff,),
        )
        batches = cursor.rowcount
    log.info("ledger_pruned", files=removed, batches=batches)
    return removed


def _gone(rows: list[tuple[object, ...]], exists: Callable[[str, str], bool]) -> list[object]:
    """The ids of rows whose file is gone (blocking: runs in a worker thread)."""
    return [r[0] for r in rows if not exists(str(r[1]), str(r[2]))]


async def counts(pg: Pg, folder: str | None) -> dict[str, dict[str, int]]:
    async with pg.tx() as conn:
        return await read_counts(conn, folder)
