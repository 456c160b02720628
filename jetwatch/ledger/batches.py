"""Batch transitions of the SQLite ledger: forming, submitting, holding, completing, failing.

Each public method is one transaction; they run in the ledger's worker thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import structlog

from jetwatch.domain.batching import Queued
from jetwatch.domain.clock import MAX_AHEAD_S
from jetwatch.domain.states import (
    BatchRow,
    BatchState,
    FileRow,
    HoldReason,
    InvalidTransitionError,
    RetryPlan,
)
from jetwatch.ledger.db import Db
from jetwatch.ledger.rows import (
    BATCH_COLUMNS,
    FILE_JSON,
    batch_row,
    exact,
    file_rows_of,
    id_list,
    unique_ids,
)

log = structlog.get_logger(__name__)

# STABLE rows no other version of their path holds back: an older one in flight (BATCHED,
# SUBMITTED, TRANSFERRED) or a newer STABLE one. "g.id <> f.id" is answered from the key
# index itself, so a path with one version (nearly all) costs one index probe, no row read.
_SENDABLE = (
    "FROM files AS f WHERE f.folder = ? AND f.state = 'STABLE' AND NOT EXISTS "
    "(SELECT 1 FROM files AS g WHERE g.folder = f.folder AND g.relpath = f.relpath "
    "AND g.id <> f.id AND (g.state IN ('BATCHED', 'SUBMITTED', 'TRANSFERRED') "
    "OR (g.state = 'STABLE' AND g.id > f.id))) "
    "ORDER BY f.stable_at, f.id LIMIT ?"
)


class BatchRecords:
    """The batches table and the file states a batch moves."""

    def __init__(self, db: Db) -> None:
        self._db = db

    def stable_queue(self, folder: str, limit: int) -> list[Queued]:
        """The oldest ``limit`` STABLE files that may be sent, as (id, size, stable_at).

        Paths with an older version still in flight are left out (BATCHED, SUBMITTED or
        TRANSFERRED: its post-action may still act on the path), so a changed file is sent
        after the first delivery finishes, never beside it; of two STABLE versions of a
        path only the newest is offered. All that forming batches needs: a round reads a
        window instead of a full row for every waiting file (a burst leaves 100,000).
        """
        with self._db.read() as conn:
            (rows,) = conn.execute(
                f"SELECT json_group_array(json_array(id, size, {exact('stable_at')})) "  # noqa: S608 - constants only
                f"FROM (SELECT f.id, f.size, f.stable_at {_SENDABLE})",
                (folder, limit),
            ).fetchone()
        # One step for the window (see json_param); the order is set here, not by SQLite.
        queue = [Queued(r[0], r[1], float(r[2])) for r in json.loads(rows)]
        queue.sort(key=lambda q: (q.ready_at, q.file_id))
        return queue

    def create_batch(
        self,
        folder: str,
        file_ids: Sequence[int],
        now: float,
        *,
        attempt: int = 1,
        parent_id: int | None = None,
        not_before: float | None = None,
    ) -> int:
        """A new OPEN batch of STABLE files (or files of a FAILED batch); they become BATCHED."""
        ids = unique_ids(file_ids)
        if not ids or attempt < 1:
            raise InvalidTransitionError("a batch needs at least one file and attempt >= 1")
        # Not synced: lost to a power cut, the files are batched again (SUBMITTING is synced
        # before any POST, and this with it).
        with self._db.write(durable=False) as conn:
            self._check_movable(conn, folder, ids)
            batch_id = self._insert_batch(
                conn,
                folder,
                ids,
                now,
                attempt,
                parent_id,
                now if not_before is None else not_before,
            )
        log.debug("batch_created", folder=folder, batch_id=batch_id, files=len(ids))
        return batch_id

    def _check_movable(self, conn: sqlite3.Connection, folder: str, ids: list[int]) -> None:
        (found_rows,) = conn.execute(
            "SELECT json_group_array(json_array(f.id, f.folder, f.relpath, f.state, b.state)) "
            "FROM files AS f LEFT JOIN batches AS b ON b.id = f.batch_id "
            "WHERE f.id IN (SELECT value FROM json_each(?))",
            (id_list(ids),),
        ).fetchone()
        check_batchable(folder, ids, json.loads(found_rows))
        # CROSS JOIN and +state pin the plan: from the given ids, probe by (folder, relpath).
        busy = conn.execute(
            "SELECT f.relpath FROM json_each(?) AS j CROSS JOIN files AS f ON f.id = j.value "
            "CROSS JOIN files AS g "
            "ON g.folder = f.folder AND g.relpath = f.relpath AND g.id <> f.id "
            "LEFT JOIN batches AS b ON b.id = g.batch_id "
            "WHERE +g.state IN ('BATCHED', 'SUBMITTED', 'TRANSFERRED') "
            "AND (b.state IS NULL OR b.state <> 'FAILED') LIMIT 1",
            (id_list(ids),),
        ).fetchone()
        if busy is not None:
            raise InvalidTransitionError(f"another version of {busy[0]!r} is still in flight")

    @staticmethod
    def _insert_batch(
        conn: sqlite3.Connection,
        folder: str,
        ids: Sequence[int],
        now: float,
        attempt: int,
        parent_id: int | None,
        not_before: float,
    ) -> int:
        (total_bytes,) = conn.execute(
            "SELECT coalesce(sum(size), 0) FROM files WHERE id IN (SELECT value FROM json_each(?))",
            (id_list(ids),),
        ).fetchone()
        cursor = conn.execute(
            "INSERT INTO batches (folder, state, attempt, parent_id, not_before, created_at, "
            "updated_at, file_count, total_bytes) VALUES (?, 'OPEN', ?, ?, ?, ?, ?, ?, ?)",
            (folder, attempt, parent_id, not_before, now, now, len(ids), total_bytes),
        )
        batch_id = int(cursor.lastrowid or 0)
        conn.execute(
            "UPDATE files SET state = 'BATCHED', batch_id = ?, updated_at = ? "
            "WHERE id IN (SELECT value FROM json_each(?))",
            (batch_id, now, id_list(ids)),
        )
        return batch_id

    def _batches(self, where: str, params: Sequence[Any] = ()) -> list[BatchRow]:
        with self._db.read() as conn:
            cursor = conn.execute(f"SELECT {BATCH_COLUMNS} FROM batches WHERE {where}", params)  # noqa: S608 - callers pass constants
            return [batch_row(r) for r in cursor]

    def open_batches(self, now: float, folder: str | None = None) -> list[BatchRow]:
        """OPEN batches due by ``now``, oldest first; one due implausibly far ahead (the wall
        clock stepped back since it was written, see MAX_AHEAD_S) is due now."""
        return self._batches(
            "state = 'OPEN' AND (not_before <= ?1 OR not_before > ?1 + ?3) "
            "AND (?2 IS NULL OR folder = ?2) ORDER BY id",
            (now, folder, MAX_AHEAD_S),
        )

    def next_open_at(self, folder: str | None = None) -> float | None:
        """The earliest not_before of any OPEN batch, to know when to wake up."""
        with self._db.read() as conn:
            (value,) = conn.execute(
                "SELECT min(not_before) FROM batches WHERE state = 'OPEN' "
                "AND (?1 IS NULL OR folder = ?1)",
                (folder,),
            ).fetchone()
        return None if value is None else float(value)

    def batch(self, batch_id: int) -> BatchRow:
        rows = self._batches("id = ?", (batch_id,))
        if not rows:
            raise KeyError(batch_id)
        return rows[0]

    def batch_files(self, batch_id: int) -> list[FileRow]:
        """Every file row pointing at the batch (GONE ones included), by id."""
        with self._db.read() as conn:
            (rows,) = conn.execute(
                f"SELECT json_group_array({FILE_JSON}) FROM files WHERE batch_id = ?",  # noqa: S608 - constants only
                (batch_id,),
            ).fetchone()
        # One step for all rows (see json_param); the order is set here, not by SQLite.
        return sorted(file_rows_of(rows), key=lambda f: f.id)

    @staticmethod
    def _guard(conn: sqlite3.Connection, batch_id: int, allowed: tuple[BatchState, ...]) -> str:
        """The batch's folder, if the batch is in one of the allowed states."""
        row = conn.execute("SELECT folder, state FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise InvalidTransitionError(f"unknown batch {batch_id}")
        if row[1] not in allowed:
            raise InvalidTransitionError(
                f"batch {batch_id} is {row[1]}, not {' or '.join(allowed)}"
            )
        return str(row[0])

    def mark_submitting(self, batch_id: int, job_id: str, now: float) -> None:
        """OPEN → SUBMITTING, committed before the POST so a crash leaves it in doubt."""
        with self._db.write() as conn:
            self._guard(conn, batch_id, (BatchState.OPEN,))
            conn.execute(
                "UPDATE batches SET state = 'SUBMITTING', job_id = ?, updated_at = ? WHERE id = ?",
                (job_id, now, batch_id),
            )

    def mark_submitted(self, batch_id: int, delivery_id: str, now: float) -> None:
        """SUBMITTING → SUBMITTED with the delivery id; its BATCHED files become SUBMITTED."""
        with self._db.write() as conn:
            self._guard(conn, batch_id, (BatchState.SUBMITTING,))
            conn.execute(
                "UPDATE files SET state = 'SUBMITTED', updated_at = ? "
                "WHERE batch_id = ? AND state = 'BATCHED'",
                (now, batch_id),
            )
            # Counts now describe what was sent: files may have vanished since batching.
            conn.execute(
                "UPDATE batches SET state = 'SUBMITTED', delivery_id = ?1, submitted_at = ?2, "
                "updated_at = ?2, (file_count, total_bytes) = (SELECT count(*), "
                "coalesce(sum(size), 0) FROM files WHERE batch_id = ?3 AND state = 'SUBMITTED') "
                "WHERE id = ?3",
                (delivery_id, now, batch_id),
            )

    def reopen(self, batch_id: int, now: float, not_before: float, error: str | None) -> None:
        """SUBMITTING/HELD → OPEN: the POST definitely failed, or the hold was lifted."""
        with self._db.write() as conn:
            self._guard(conn, batch_id, (BatchState.SUBMITTING, BatchState.HELD))
            conn.execute(
                "UPDATE batches SET state = 'OPEN', not_before = ?, held_reason = NULL, "
                "last_error = coalesce(?, last_error), updated_at = ? WHERE id = ?",
                (not_before, error, now, batch_id),
            )

    def mark_held(
        self, batch_id: int, reason: HoldReason, now: float, detail: str | None = None
    ) -> None:
        """OPEN/SUBMITTING → HELD; ``detail`` (which problem) is kept in ``last_error``."""
        with self._db.write() as conn:
            self._guard(conn, batch_id, (BatchState.OPEN, BatchState.SUBMITTING))
            conn.execute(
                "UPDATE batches SET state = 'HELD', held_reason = ?, last_error = ?, "
                "updated_at = ? WHERE id = ?",
                (HoldReason(reason).value, detail, now, batch_id),
            )

    def held_batches(self, folder: str | None = None) -> list[BatchRow]:
        return self._batches(
            "state = 'HELD' AND (?1 IS NULL OR folder = ?1) ORDER BY id", (folder,)
        )

    def release_held(self, batch_ids: Sequence[int], now: float) -> int:
        """HELD → OPEN, due now; ids not HELD are skipped. Returns how many were released."""
        with self._db.write() as conn:
            changed = conn.execute(
                "UPDATE batches SET state = 'OPEN', not_before = ?1, held_reason = NULL, "
                "updated_at = ?1 WHERE id IN (SELECT value FROM json_each(?2)) AND +state = 'HELD'",
                (now, id_list(unique_ids(batch_ids))),
            ).rowcount
        return int(changed)

    def in_doubt_batches(self) -> list[BatchRow]:
        """SUBMITTING batches: a crash may have happened after their POST was sent."""
        return self._batches("state = 'SUBMITTING' ORDER BY id")

    def submitted_batches(self, folder: str | None = None) -> list[BatchRow]:
        return self._batches(
            "state = 'SUBMITTED' AND (?1 IS NULL OR folder = ?1) ORDER BY id", (folder,)
        )

    def known_delivery_ids(self) -> set[str]:
        with self._db.read() as conn:
            cursor = conn.execute("SELECT delivery_id FROM batches WHERE delivery_id IS NOT NULL")
            return {str(r[0]) for r in cursor}

    def complete_batch(self, batch_id: int, now: float) -> None:
        """SUBMITTED → COMPLETED; its files become TRANSFERRED (post-action pending)."""
        # Not synced: lost to a power cut, the delivery is asked again and still COMPLETED.
        with self._db.write(durable=False) as conn:
            self._guard(conn, batch_id, (BatchState.SUBMITTED,))
            conn.execute(
                "UPDATE batches SET state = 'COMPLETED', updated_at = ? WHERE id = ?",
                (now, batch_id),
            )
            conn.execute(
                "UPDATE files SET state = 'TRANSFERRED', updated_at = ? "
                "WHERE batch_id = ? AND state = 'SUBMITTED'",
                (now, batch_id),
            )

    def fail_batch(
        self,
        batch_id: int,
        reason: str,
        now: float,
        retries: Sequence[RetryPlan],
        give_up: Sequence[int],
    ) -> list[int]:
        """Batch → FAILED; each live file counts an attempt, then is re-batched or given up.

        Every live file (BATCHED/SUBMITTED) must appear exactly once across ``retries`` and
        ``give_up``. Files of the batch that are already GONE may appear and are skipped (a
        plan left empty by that creates no batch). Returns the ids of the new OPEN batches.
        """
        with self._db.write() as conn:
            live = (BatchState.OPEN, BatchState.SUBMITTING, BatchState.SUBMITTED, BatchState.HELD)
            folder = self._guard(conn, batch_id, live)
            conn.execute(
                "UPDATE batches SET state = 'FAILED', last_error = ?, updated_at = ? WHERE id = ?",
                (reason, now, batch_id),
            )
            (member_rows,) = conn.execute(
                "SELECT json_group_array(json_array(id, state)) FROM files WHERE batch_id = ?",
                (batch_id,),
            ).fetchone()
            members = {int(r[0]): str(r[1]) for r in json.loads(member_rows)}
            plans, give_up = check_accounting(batch_id, members, retries, give_up)
            conn.execute(
                "UPDATE files SET attempts = attempts + 1, updated_at = ? "
                "WHERE batch_id = ? AND state IN ('BATCHED', 'SUBMITTED')",
                (now, batch_id),
            )
            new_ids = [
                self._insert_batch(
                    conn, folder, plan.file_ids, now, plan.attempt, batch_id, plan.not_before
                )
                for plan in plans
            ]
            conn.execute(
                "UPDATE files SET state = 'FAILED', error = ?, action_done = 0, "
                "action_error = NULL, updated_at = ? WHERE id IN (SELECT value FROM json_each(?))",
                (reason, now, id_list(give_up)),
            )
        log.debug("batch_failed", batch_id=batch_id, retries=new_ids, given_up=len(give_up))
        return new_ids


def check_batchable(folder: str, ids: Sequence[int], rows: Sequence[Sequence[Any]]) -> None:
    """Raise unless every id is a file of ``folder`` that may join a new batch, one per path.

    ``rows`` are (id, folder, relpath, file state, its batch's state) of the given ids; a
    file may join when STABLE, or BATCHED/SUBMITTED in a FAILED batch (a retry). Both
    ledger backends check with this.
    """
    found = {r[0] for r in rows}
    bad = [i for i in ids if i not in found]
    bad += [
        r[0]
        for r in rows
        if r[1] != folder
        or not (r[3] == "STABLE" or (r[3] in ("BATCHED", "SUBMITTED") and r[4] == "FAILED"))
    ]
    if bad:
        raise InvalidTransitionError(
            f"files {sorted(bad)[:10]} are unknown, of another folder, or not batchable"
        )
    if len({r[2] for r in rows}) != len(rows):
        raise InvalidTransitionError("a batch may hold only one version of a path")


def check_accounting(
    batch_id: int, members: dict[int, str], retries: Sequence[RetryPlan], give_up: Sequence[int]
) -> tuple[list[RetryPlan], list[int]]:
    """The plans without GONE files, once each live file is in exactly one of them."""
    if any(not plan.file_ids or plan.attempt < 1 for plan in retries):
        raise InvalidTransitionError("each RetryPlan needs files and attempt >= 1")
    planned = [i for plan in retries for i in plan.file_ids] + list(give_up)
    live = {i for i, state in members.items() if state in ("BATCHED", "SUBMITTED")}
    gone = {i for i, state in members.items() if state == "GONE"}
    if len(planned) != len(set(planned)) or set(planned) - gone != live:
        missing = sorted(live - set(planned))[:10]
        extra = sorted(set(planned) - live - gone)[:10]
        raise InvalidTransitionError(
            f"fail_batch({batch_id}): retries and give_up must hold each of its {len(live)} "
            f"files exactly once (missing {missing}, not in batch {extra}, or duplicated)"
        )
    plans = [
        RetryPlan(tuple(i for i in plan.file_ids if i not in gone), plan.attempt, plan.not_before)
        for plan in retries
    ]
    return [plan for plan in plans if plan.file_ids], [i for i in give_up if i not in gone]
