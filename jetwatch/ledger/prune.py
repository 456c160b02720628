"""Pruning the SQLite ledger: finished rows of files gone from disk, after the retention time."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from jetwatch.ledger.db import Db

log = structlog.get_logger(__name__)

_PRUNE_CHUNK = 1000
# "+state" keeps SQLite on the id range: a state index here would sort every row per chunk.
_FINISHED = "(+state IN ('DONE', 'GONE') OR (+state = 'FAILED' AND action_done = 1))"


async def prune(db: Db, now: float, retention_s: float, exists: Callable[[str, str], bool]) -> int:
    """Delete finished rows older than retention_s whose file is gone; returns the count.

    A row is kept while its path exists, or the next scan would send the file again;
    ``exists(folder, relpath)`` must answer True when unsure (e.g. a share is down). One
    chunk at a time in the ledger's thread (``exists`` is called there, outside any
    transaction), so other ledger calls are served between chunks.
    """
    cutoff, last_id, removed = now - retention_s, 0, 0
    while (step := await db.call(_prune_chunk, db, last_id, cutoff, exists)) is not None:
        last_id, deleted = step
        removed += deleted
    batches = await db.call(_prune_batches, db, cutoff)
    log.info("ledger_pruned", files=removed, batches=batches)
    return removed


def _prune_chunk(
    db: Db, after_id: int, cutoff: float, exists: Callable[[str, str], bool]
) -> tuple[int, int] | None:
    """(last id looked at, rows deleted) of the next chunk after ``after_id``; None at the end."""
    with db.read() as conn:
        rows = conn.execute(
            f"SELECT id, folder, relpath FROM files WHERE id > ? AND updated_at < ? "  # noqa: S608 - constants only
            f"AND {_FINISHED} ORDER BY id LIMIT ?",
            (after_id, cutoff, _PRUNE_CHUNK),
        ).fetchall()
    if not rows:
        return None
    doomed = [r[0] for r in rows if not exists(r[1], r[2])]
    if not doomed:
        return rows[-1][0], 0
    with db.write() as conn:
        deleted = conn.executemany(
            f"DELETE FROM files WHERE id = ? AND updated_at < ? AND {_FINISHED}",  # noqa: S608 - constants only
            ((file_id, cutoff) for file_id in doomed),
        ).rowcount
    return rows[-1][0], int(deleted)


def _prune_batches(db: Db, cutoff: float) -> int:
    with db.write() as conn:
        return int(
            conn.execute(
                "DELETE FROM batches WHERE state IN ('COMPLETED', 'FAILED') AND updated_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM files WHERE batch_id = batches.id)",
                (cutoff,),
            ).rowcount
        )
